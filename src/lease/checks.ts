/** Argument checks both lease managers share, so they reject the same calls the same way. */

/** Redis `PX` takes a positive integer; a fractional or zero TTL is a caller's bug, not a lease. */
export function checkTtl(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`lease ttlMs must be a positive integer, got ${ttlMs}`);
  }
}

export function checkOwner(owner: string): void {
  if (owner === "") throw new RangeError("lease owner must not be empty");
}
