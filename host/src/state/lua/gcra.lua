-- GCRA over several limits in order, stopping at the first denial; the same
-- algorithm and numbers as the `governor` crate (emission interval T, tolerance
-- tau = T * (burst - 1), n cells weigh T * n).
-- KEYS: one theoretical-arrival-time key per limit.
-- ARGV: per limit: T (us), tau (us), n (cells).
-- Returns per limit checked: {allowed (1/0, -1 = larger than the burst),
-- remaining, retry_after_us}. Time is the server's (microseconds; exact in
-- a double until 2255).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i = 1, #KEYS do
  local T = tonumber(ARGV[3 * i - 2])
  local tau = tonumber(ARGV[3 * i - 1])
  local n = tonumber(ARGV[3 * i])
  local add = T * (n - 1)
  if add > tau then
    out[#out + 1] = {-1, 0, 0}
    return out
  end
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  local earliest = tat + add - tau
  if now < earliest then
    out[#out + 1] = {0, 0, math.ceil(earliest - now)}
    return out
  end
  local nxt = math.max(tat, now) + T + add
  redis.call('SET', KEYS[i], string.format('%d', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1)
  local remaining = math.floor(math.min(now + tau + T - nxt, tau + T) / T)
  out[#out + 1] = {1, remaining, 0}
end
return out
