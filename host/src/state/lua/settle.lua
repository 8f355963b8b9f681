-- Settle a reservation: release it, add the cost, append the ledger record.
-- KEYS: n counter hashes, then their n reservation zsets, then optionally
--       the ledger stream.
-- ARGV: n, id, cost, n x expire_at (unix s), then optionally the record.
-- Returns {spent1, reserved1, ...} after settling.
local function int(x) return string.format('%d', x) end
local n = tonumber(ARGV[1])
local id = ARGV[2]
local cost = tonumber(ARGV[3])
local out = {}
for i = 1, n do
  local h, z = KEYS[i], KEYS[n + i]
  -- Gone from the zset = never reserved here, or already expired (and
  -- subtracted by the purge in reserve.lua).
  if redis.call('ZREM', z, id) == 1 then
    local a = redis.call('HGET', h, 'r:' .. id)
    if a then
      redis.call('HINCRBY', h, 'reserved', int(-tonumber(a)))
      redis.call('HDEL', h, 'r:' .. id)
    end
  end
  local spent = redis.call('HINCRBY', h, 'spent', int(cost))
  redis.call('EXPIREAT', h, ARGV[3 + i])
  out[2 * i - 1] = spent
  out[2 * i] = tonumber(redis.call('HGET', h, 'reserved') or 0)
end
if #KEYS > 2 * n then
  redis.call('XADD', KEYS[2 * n + 1], '*', 'r', ARGV[4 + n])
end
return out
