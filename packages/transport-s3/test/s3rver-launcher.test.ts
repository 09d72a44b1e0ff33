import { existsSync } from "node:fs";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { startS3rver } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";

// The test kit's launcher, tested here because the test kit must not depend on the AWS SDK.
describe("startS3rver", () => {
  it("serves the bucket; stop() ends the process and keeps the directory; close() removes it", async () => {
    const s3 = await startS3rver({ bucket: "launcher-test" });
    expect(s3.running).toBe(true);
    expect(s3.pid).toBeTypeOf("number");
    expect(s3.endpoint).toBe(`http://127.0.0.1:${s3.port}`);
    expect(s3.client()).toMatchObject({ endpoint: s3.endpoint, forcePathStyle: true, region: "us-east-1" });
    const client = new S3Client(s3.client());
    try {
      await client.send(new PutObjectCommand({ Bucket: "launcher-test", Key: "k", Body: "v" }));
    } finally {
      client.destroy();
    }
    expect(existsSync(s3.directory)).toBe(true);

    await s3.stop();
    expect(s3.running).toBe(false);
    expect(s3.pid).toBeUndefined();
    await expect(fetch(`${s3.endpoint}/launcher-test`)).rejects.toThrow();
    expect(existsSync(s3.directory)).toBe(true);

    await s3.close();
    expect(existsSync(s3.directory)).toBe(false);
    await s3.close(); // idempotent
  });

  it("kill() crashes the server; await using removes its directory", async () => {
    let dir = "";
    {
      await using s3 = await startS3rver();
      dir = s3.directory;
      await s3.kill();
      expect(s3.running).toBe(false);
      await expect(fetch(`${s3.endpoint}/${s3.bucket}`)).rejects.toThrow();
    }
    expect(dir).not.toBe("");
    expect(existsSync(dir)).toBe(false);
  });
});
