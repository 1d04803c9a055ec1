--[[
  Adds a call's amounts to a model's usage (addUsage() of
  src/ratelimit/usageWindow.ts): the current window's, on Redis' clock. The hash
  outlives the window after the current one by a second, then reads as nothing.

  Input:
    KEYS[1]     usage hash (<prefix>:ratelimit-used:<model>)
    ARGV[1]     window length, ms
    ARGV[2..4]  requests, input tokens, output tokens to add (negative: a refund)

  Output:
    1
]]
--- @include "includes/clock"
--- @include "includes/usage"

addToUsage(KEYS[1], redisNowMs(), tonumber(ARGV[1]), { tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]) })
return 1
