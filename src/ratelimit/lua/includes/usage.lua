--[[
  A model's usage hash, moved to the window holding `now` (roll() of
  src/ratelimit/usageWindow.ts): the current window's amounts, and the previous
  window's when the stored one is exactly one window older.

  Input:
    key       the usage hash (<prefix>:ratelimit-used:<model>)
    now       Redis clock, ms
    windowMs  window length, ms

  Output:
    { w = window index, cur = { 3 amounts }, prev = { 3 amounts } }
]]
local function loadUsage(key, now, windowMs)
  local f = redis.call("HMGET", key, "w", "c1", "c2", "c3", "p1", "p2", "p3")
  local w = math.floor(now / windowMs)
  local s = { w = w, cur = { 0, 0, 0 }, prev = { 0, 0, 0 } }
  local stored = tonumber(f[1])
  if stored == w then
    for j = 1, 3 do
      s.cur[j] = tonumber(f[1 + j]) or 0
      s.prev[j] = tonumber(f[4 + j]) or 0
    end
  elseif stored == w - 1 then
    for j = 1, 3 do s.prev[j] = tonumber(f[1 + j]) or 0 end
  end
  return s
end

--[[
  Adds amounts to a model's usage hash (addUsage() of src/ratelimit/usageWindow.ts):
  the current window's, on Redis' clock. The hash outlives the window after the
  current one by a second, then reads as nothing.

  Input:
    key       the usage hash (<prefix>:ratelimit-used:<model>)
    now       Redis clock, ms
    windowMs  window length, ms
    amounts   requests, input tokens, output tokens to add (negative: a refund)
]]
local function addToUsage(key, now, windowMs, amounts)
  local s = loadUsage(key, now, windowMs)
  local fields = { "w", string.format("%d", s.w) }
  for j = 1, 3 do
    table.insert(fields, "c" .. j)
    table.insert(fields, string.format("%.17g", s.cur[j] + amounts[j]))
    table.insert(fields, "p" .. j)
    table.insert(fields, string.format("%.17g", s.prev[j]))
  end
  redis.call("HSET", key, unpack(fields))
  redis.call("PEXPIRE", key, math.ceil(2 * windowMs) + 1000)
end
