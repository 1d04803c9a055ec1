--[[
  Extends leases, each only if its caller still holds it: one lease
  (`renew`) or all a planner holds, a thousand a call (`renewMany`),
  answered in order.

  Input:
    KEYS[i]     the i-th lease key   (<prefix>:lease:<taskId>)
    ARGV[1]     time-to-live in ms   (each new expiry counts from now)
    ARGV[1 + i] the i-th lease's owner

  Output: one entry per key, in order:
    1  renewed
    0  not held by this owner: expired, released, or taken over by another
]]
local ttl = ARGV[1]
local answers = {}
for i, key in ipairs(KEYS) do
  if redis.call("GET", key) == ARGV[i + 1] then
    answers[i] = redis.call("PEXPIRE", key, ttl)
  else
    answers[i] = 0
  end
end
return answers
