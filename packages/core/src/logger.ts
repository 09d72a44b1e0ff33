/**
 * The logging interface slipstream calls: a subset of pino's (`logger.info(msg, attrs)` —
 * note the message comes first, so wrap pino with {@link fromPino} or pass any object with
 * these four methods). Attribute keys are stable: `cursor`, `key`, `attempt`, `bucket`.
 */
export interface Logger {
  debug(msg: string, attrs?: Record<string, unknown>): void;
  info(msg: string, attrs?: Record<string, unknown>): void;
  warn(msg: string, attrs?: Record<string, unknown>): void;
  error(msg: string, attrs?: Record<string, unknown>): void;
}

const noop = (): void => {};

/** The default logger: says nothing. */
export const silentLogger: Logger = Object.freeze({ debug: noop, info: noop, warn: noop, error: noop });

/** Adapts a pino-style logger (`log(attrs, msg)`) to {@link Logger}. */
export function fromPino(pino: {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}): Logger {
  return {
    debug: (msg, attrs) => pino.debug(attrs ?? {}, msg),
    info: (msg, attrs) => pino.info(attrs ?? {}, msg),
    warn: (msg, attrs) => pino.warn(attrs ?? {}, msg),
    error: (msg, attrs) => pino.error(attrs ?? {}, msg),
  };
}
