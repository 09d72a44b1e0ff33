console.log("slipstream demo: placeholder — the end-to-end story lands with the demo issue.");
