--[[
  The refill of a scope's three buckets up to now: refill() of
  src/ratelimit/bucketMath.ts, in Lua. Continuous, capped at capacity, counted
  from the refill clock `ts` (a 429 penalty puts it in the future: nothing
  refills before it). An absent hash or level is a full bucket; an unlimited
  bucket (capacity 0) reads 0 and is never stored.

  Input:
    h     the scope hash's ts, l1, l2, l3 (HMGET)
    cap   capacity of requests, input tokens, output tokens (0 = no limit)
    rate  refill per ms of each
    now   Redis clock, ms

  Output:
    level  the three levels at now
    ts     the refill clock, moved up to now if it was behind
]]
local function refill(h, cap, rate, now)
  local ts = tonumber(h[1]) or now
  local level = {}
  for j = 1, 3 do
    if cap[j] > 0 then
      local l = math.min(cap[j], tonumber(h[1 + j]) or cap[j])
      if now > ts then l = math.min(cap[j], l + (now - ts) * rate[j]) end
      level[j] = l
    else
      level[j] = 0
    end
  end
  if now > ts then ts = now end
  return level, ts
end
