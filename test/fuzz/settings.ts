/**
 * Run size and seed of the fuzz suites: fixed by default, so CI replays the same
 * cases; `CLAWFLEET_FUZZ_RUNS` and `CLAWFLEET_FUZZ_SEED` make a longer or another
 * run, and every run prints both so a failure can be replayed.
 */
export interface FuzzSettings {
  seed: number;
  numRuns: number;
  /** fast-check's `path` of a counterexample (CLAWFLEET_FUZZ_PATH): replays that case alone. */
  path?: string;
}

export function fuzzSettings(suite: string, defaultRuns: number, defaultSeed: number): FuzzSettings {
  const runs = Number(process.env.CLAWFLEET_FUZZ_RUNS ?? defaultRuns);
  const seed = Number(process.env.CLAWFLEET_FUZZ_SEED ?? defaultSeed);
  if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`CLAWFLEET_FUZZ_RUNS must be a positive integer, got ${process.env.CLAWFLEET_FUZZ_RUNS}`);
  if (!Number.isSafeInteger(seed)) throw new Error(`CLAWFLEET_FUZZ_SEED must be an integer, got ${process.env.CLAWFLEET_FUZZ_SEED}`);
  process.stdout.write(`fuzz ${suite}: seed=${seed} runs=${runs} (replay: CLAWFLEET_FUZZ_SEED=${seed} CLAWFLEET_FUZZ_RUNS=${runs})\n`);
  const path = process.env.CLAWFLEET_FUZZ_PATH;
  return { seed, numRuns: runs, ...(path ? { path } : {}) };
}
