/**
 * The queueing formulas the capacity planner uses, each for a server that is
 * busy a fraction `rho` (utilisation) of the time. Waits are in the unit of the
 * service time given; an unstable queue (`rho >= 1`) waits `Infinity`.
 *
 * - M/D/1 (Poisson arrivals, one server, deterministic service): the provider's
 *   rate limit seen as a server that admits one call every `1 / capacity`
 *   seconds. Pollaczek–Khinchine with zero service variance:
 *   Wq = rho · D / (2 (1 − rho)). A token bucket lets a burst of up to one
 *   window's limit through at once, so this overstates the wait of a load
 *   below the limit: it is an upper bound.
 * - M/M/c (Poisson arrivals, `c` servers, exponential service), Erlang C:
 *   the planners' task slots, each holding a task for its whole run.
 *   Wq = C(c, a) · S / (c − a), with a = λ·S the offered load. A task's run
 *   varies less than an exponential, so this too errs on the long side.
 */

/** Mean wait in queue of an M/D/1 server with service time `service` at utilisation `rho`. */
export function md1Wait(rho: number, service: number): number {
  if (rho <= 0) return 0;
  if (rho >= 1) return Infinity;
  return (rho * service) / (2 * (1 - rho));
}

/**
 * Erlang C: the probability that an arrival waits, for `c` servers and an offered load of `a` erlangs.
 * Computed through the Erlang B recurrence, which stays stable for thousands of servers.
 */
export function erlangC(c: number, a: number): number {
  if (a <= 0) return 0;
  if (a >= c) return 1;
  let b = 1;
  for (let k = 1; k <= c; k++) b = (a * b) / (k + a * b);
  const rho = a / c;
  return b / (1 - rho + rho * b);
}

/** Mean wait in queue of an M/M/c system: `c` servers, `arrivals` per unit of time, mean service time `service`. */
export function mmcWait(c: number, arrivals: number, service: number): number {
  if (arrivals <= 0) return 0;
  const a = arrivals * service;
  if (a >= c) return Infinity;
  return (erlangC(c, a) * service) / (c - a);
}
