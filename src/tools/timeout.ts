/** A tool call bounded by its timeout, whoever runs it (the registry's `run`, the executor). */

/** The call outlived its timeout. */
export class ToolTimeout extends Error {}

/**
 * Runs `fn` with a signal that aborts at `timeoutMs`, and rejects with a ToolTimeout then. A tool that ignores
 * its signal may still settle later; nobody is listening by then.
 */
export async function withToolTimeout<T>(tool: string, timeoutMs: number, fn: (signal: AbortSignal) => Promise<T> | T): Promise<T> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const timeout = new ToolTimeout(`tool ${tool} timed out after ${timeoutMs} ms`);
      abort.abort(timeout);
      reject(timeout);
    }, timeoutMs);
  });
  // Through a promise, so a tool that throws before its first await is handled like one that rejects.
  const running = Promise.resolve().then(() => fn(abort.signal));
  running.catch(() => undefined);
  try {
    return await Promise.race([running, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
