-- complete.lua: record the success of one or more running jobs of one queue.
--
-- Each job's result (JSON) is stored; the job hash then expires after its result TTL and its
-- id enters the succeeded registry (bounded by age and size). Refused, with no change, for a
-- job whose fence token is not the caller's; a success sent again (its reply was lost after it
-- ran: the job succeeded under the caller's token) is answered as recorded.
--
-- KEYS[1]  meta   KEYS[2] leases   KEYS[3] succeeded registry   KEYS[4] events
-- KEYS[5]  uniques   then per job i: KEYS[4 + 2i] job hash, KEYS[5 + 2i] done list
-- ARGV[1]  epoch  ARGV[2] queue  ARGV[3] events maxlen  ARGV[4] default result TTL ms
-- ARGV[5]  registry size limit, then per job: local id, fence token, result JSON,
--          result TTL ms ('' = the job's own 'ttl' field, else the default)
-- Returns  {status...}: 1 recorded, 0 refused (lease lost)
local meta, leases, registry, events, uniques = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local err = preflight(ARGV[1], 5)
if err then return err end
local queue, maxlen = ARGV[2], ARGV[3]
local default_ttl, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local out = {}
local n = (#KEYS - 5) / 2
for i = 1, n do
  local jkey, done = KEYS[4 + 2 * i], KEYS[5 + 2 * i]
  local a = 2 + 4 * i
  local lid, token, result, ttl = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  -- What the job's fields say, in one call: state and token (the lease check), its own result
  -- TTL, its unique key, how many wait() calls are waiting, its version.
  local ok, h = pcall(redis.call, 'HMGET', jkey, 'state', 'token', 'ttl', 'unique', 'w', 'v')
  if ok and h[1] == 'running' and h[2] == token then
    if not ttl then
      local own = tonumber(h[3])
      ttl = own and own * 1000 or default_ttl
    end
    local v = next_version(h[6])
    redis.call('ZREM', leases, lid)
    redis.call('HSET', jkey, 'state', 'succeeded', 'result', result, 'ended', now, 'v', v)
    if wake_waiters(done, h[5]) then
      redis.call('HDEL', jkey, 'lease', 'cancel', 'w')
    else
      redis.call('HDEL', jkey, 'lease', 'cancel')
    end
    free_unique(uniques, h[4], lid)
    redis.call('PEXPIRE', jkey, ttl)
    redis.call('ZADD', registry, now, lid)
    emit(events, maxlen, queue, lid, 'succeeded', v, now, {'result', result, 'ended', now})
    out[#out + 1] = 1
  elseif ok and h[1] == 'succeeded' and h[2] == token then
    out[#out + 1] = 1 -- recorded by this same call, whose reply was lost
  else
    out[#out + 1] = 0
  end
end
-- The registry is trimmed once per call, by age and size, not once per job.
redis.call('ZREMRANGEBYSCORE', registry, '-inf', '(' .. (now - default_ttl))
redis.call('ZREMRANGEBYRANK', registry, 0, -(limit + 1))
return out
