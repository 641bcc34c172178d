-- The driver every algorithm's script ends with (the algorithm above it defines `check`,
-- `record` and `report`). A policy has one or more limits: KEYS[i] holds the state of
-- limit i, ARGV[2i-1] its limit and ARGV[2i] its window in ms. All limits are checked
-- against one Redis time; only if every one has room is the request recorded in all of
-- them, so a refusal by one limit takes nothing from the others.
-- Returns {admitted (1/0), remaining, ms until the next unit returns, i}: the figures of
-- limit i, the one the headers report: when admitted, the one with the fewest units left
-- (closest to refusing); when refused, the refusing one that frees up last, so a client
-- that waits that long finds room in every limit that refused it.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local states = {}
local admitted = 1
for i = 1, #KEYS do
  local s = check(KEYS[i], tonumber(ARGV[2 * i - 1]), ARGV[2 * i], now_us)
  states[i] = s
  if not s.admit then
    admitted = 0
  end
end
if admitted == 1 then
  for i = 1, #KEYS do
    record(states[i])
  end
end
local shown, shown_remaining, shown_next = 0, 0, 0
for i = 1, #KEYS do
  local remaining, next_ms = report(states[i])
  local better
  if shown == 0 then
    better = admitted == 1 or not states[i].admit
  elseif admitted == 1 then
    better = remaining < shown_remaining
      or (remaining == shown_remaining and next_ms > shown_next)
  else
    better = not states[i].admit and next_ms > shown_next
  end
  if better then
    shown, shown_remaining, shown_next = i, remaining, next_ms
  end
end
return {admitted, shown_remaining, shown_next, shown}
