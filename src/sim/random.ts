/**
 * Deterministic pseudo-randomness. Each draw is a pure function of (seed, stream,
 * index), so latency jitter and failure injection are reproducible and do not
 * disturb each other: enabling jitter leaves the failure pattern unchanged.
 */

/** splitmix32-style finaliser: a well-mixed 32-bit hash of one integer. */
function mix32(x: number): number {
  let z = x | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** Uniform in [0, 1). */
export function uniform(seed: number, stream: number, index: number): number {
  const h = mix32(mix32(mix32(seed) ^ Math.imul(stream, 0x9e3779b9)) ^ index);
  return h / 0x1_0000_0000;
}

/** A counter-driven sequence of uniform draws. */
export class DrawSequence {
  private index = 0;

  constructor(
    private readonly seed: number,
    private readonly stream: number,
  ) {}

  next(): number {
    return uniform(this.seed, this.stream, this.index++);
  }

  reset(): void {
    this.index = 0;
  }
}
