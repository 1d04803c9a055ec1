--[[
  Reads a scope hash and the shape each of its buckets is held to: the caller's
  limit where it has one, else the shape stored by whoever limited the bucket
  (fields c1..c3, r1..r3). A gateway that knows no limit yet (it has not learned
  the provider's) neither escapes another gateway's limit nor erases its debt.
  effective() of src/ratelimit/bucketMath.ts.

  Input:
    key   the scope hash
    cap   capacity of requests, input tokens, output tokens from the caller (0 = no limit); updated in place
    rate  refill per ms of each; updated in place

  Output:
    h     the hash's ts, l1, l2, l3, c1..c3, r1..r3 (refill() reads the first four)
]]
local function loadBuckets(key, cap, rate)
  local h = redis.call("HMGET", key, "ts", "l1", "l2", "l3", "c1", "c2", "c3", "r1", "r2", "r3")
  for j = 1, 3 do
    local c = tonumber(h[4 + j])
    if cap[j] <= 0 and c and c > 0 then
      cap[j] = c
      rate[j] = tonumber(h[7 + j])
    end
  end
  return h
end
