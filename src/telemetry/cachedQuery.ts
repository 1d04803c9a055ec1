/**
 * A query whose answer is reused for a while: Prometheus scrapes (several
 * replicas of Prometheus, or a scrape storm) then cost the database at most one
 * query per `ttlMs`, and scrapes that arrive while it runs share it. A failed
 * query is not reused: the next call asks again.
 */
export interface CachedQueryOptions {
  /** @default 5000 */
  ttlMs?: number;
  /** @default Date.now */
  now?: () => number;
}

export const METRICS_QUERY_TTL_MS = 5_000;

export function cachedQuery<T>(query: () => Promise<T>, opts: CachedQueryOptions = {}): () => Promise<T> {
  const ttlMs = opts.ttlMs ?? METRICS_QUERY_TTL_MS;
  const now = opts.now ?? Date.now;
  let current: { answer: Promise<T>; at: number } | undefined;
  return () => {
    if (current !== undefined && now() - current.at < ttlMs) return current.answer;
    const entry = { answer: query(), at: now() };
    current = entry;
    void entry.answer.catch(() => {
      if (current === entry) current = undefined;
    });
    return entry.answer;
  };
}
