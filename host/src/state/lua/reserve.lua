-- Reserve an amount against every budget line, all or nothing.
-- KEYS: per line i, KEYS[2i-1] = counter hash (spent, reserved, r:<id>),
--       KEYS[2i] = its reservations by expiry (zset: id -> expiry ms).
-- ARGV: amount, id, ttl_ms, then per line: limit, expire_at (unix s).
-- Returns {0, spent1, reserved1, ...} when reserved everywhere, else
-- {i, spent, reserved} for the first line without room (nothing changed).
-- Time is the server's, so every gateway agrees on reservation expiry.
local function int(x) return string.format('%d', x) end
local amount = tonumber(ARGV[1])
local id = ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[3])
local n = #KEYS / 2

local out = {0}
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  -- Reservations of crashed requests stop counting once expired.
  for _, rid in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', now)) do
    local a = redis.call('HGET', h, 'r:' .. rid)
    if a then
      redis.call('HINCRBY', h, 'reserved', int(-tonumber(a)))
      redis.call('HDEL', h, 'r:' .. rid)
    end
    redis.call('ZREM', z, rid)
  end
  local v = redis.call('HMGET', h, 'spent', 'reserved')
  local spent, reserved = tonumber(v[1] or 0), tonumber(v[2] or 0)
  if spent + reserved + amount > tonumber(ARGV[2 + 2 * i]) then
    return {i, spent, reserved}
  end
  out[2 * i] = spent
  out[2 * i + 1] = reserved + amount
end
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local expire_at = ARGV[3 + 2 * i]
  redis.call('HINCRBY', h, 'reserved', int(amount))
  redis.call('HSET', h, 'r:' .. id, int(amount))
  redis.call('ZADD', z, int(expiry), id)
  redis.call('EXPIREAT', h, expire_at)
  redis.call('EXPIREAT', z, expire_at)
end
return out
