/** The slipstream benchmarks (work in progress). */
export {};
