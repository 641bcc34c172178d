#!lua
-- (A Redis 7 shebang with no flags: Redis refuses the whole script while it is over
-- maxmemory, instead of letting it write past the limit once its first write, which frees
-- memory, is done. The cluster runs noeviction, so a full Redis shows as oom errors.)
-- Sliding-window counter: the previous fixed window's count, weighted by how much of it
-- still overlaps the sliding window, plus the current window's count; at most `limit`.
-- A limit's key is a hash {w = current window index, c = its count, p = previous count}.
local function check(key, limit, window_ms, now_us)
  local window = tonumber(window_ms)
  local now = math.floor(now_us / 1000)
  local index = math.floor(now / window)
  local elapsed = now - index * window
  local state = redis.call('HMGET', key, 'w', 'c', 'p')
  local w = tonumber(state[1])
  local c = tonumber(state[2]) or 0
  local p = tonumber(state[3]) or 0
  if w == nil then
    c, p = 0, 0
  elseif w == index - 1 then
    p, c = c, 0
  elseif w > index then
    -- Redis' clock stepped back into an earlier window: keep counting in the stored one.
    index, elapsed = w, 0
  elseif w ~= index then
    c, p = 0, 0
  end
  -- Everything is scaled by the window so the arithmetic stays in exact integers.
  local limit_scaled = limit * window
  local used_scaled = p * (window - elapsed) + c * window
  return {key = key, limit = limit, window = window, index = index, elapsed = elapsed,
    c = c, p = p, limit_scaled = limit_scaled, used_scaled = used_scaled,
    admit = used_scaled + window <= limit_scaled}
end

local function record(s)
  s.c = s.c + 1
  s.used_scaled = s.used_scaled + s.window
  redis.call('HSET', s.key, 'w', s.index, 'c', s.c, 'p', s.p)
  -- The count is still needed as "previous" during the next window.
  redis.call('PEXPIRE', s.key, 2 * s.window - s.elapsed)
end

local function report(s)
  local window, c, p, used_scaled = s.window, s.c, s.p, s.used_scaled
  local remaining = math.floor((s.limit_scaled - used_scaled) / window)
  if remaining < 0 then
    remaining = 0
  end
  -- The estimate decays linearly: the previous window's weight until this window ends,
  -- then this window's count across the next one. Find when it reaches the level at
  -- which one more unit is free.
  local target_scaled = (s.limit - remaining - 1) * window
  if target_scaled < 0 then
    target_scaled = 0
  end
  local next_ms = 0
  if used_scaled > target_scaled then
    if target_scaled >= c * window then
      next_ms = math.ceil((used_scaled - target_scaled) / p)
    else
      next_ms = (window - s.elapsed) + math.ceil((c * window - target_scaled) / c)
    end
  end
  return remaining, next_ms
end

