-- retry.lua: put one failed or canceled job back in the queue (a manual retry).
--
-- The job gets a fresh attempt budget (its max attempts count from now), its stall count is
-- reset, its expiry is removed, and it takes its unique key back if no other live job holds it.
-- Its errors and worker history are kept.
--
-- KEYS[1]  meta   KEYS[2] ready   KEYS[3] failed registry   KEYS[4] canceled registry
-- KEYS[5]  events   KEYS[6] uniques   KEYS[7] wake   KEYS[8] job hash
-- ARGV[1]  epoch  ARGV[2] queue  ARGV[3] events maxlen  ARGV[4] local id
-- Returns  {outcome, state}: outcome 'retried' or 'refused'; state after the call
local meta, ready, failed, canceled, events, uniques, wake, jkey =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local err = preflight(ARGV[1])
if err then return err end
local queue, maxlen, lid = ARGV[2], ARGV[3], ARGV[4]
local state = job_state(jkey)
if state ~= 'failed' and state ~= 'canceled' then
  return {'refused', state or ''}
end
local now = now_ms()
redis.call('ZREM', failed, lid)
redis.call('ZREM', canceled, lid)
redis.call('PERSIST', jkey)
local h = redis.call('HMGET', jkey, 'att', 'prio', 'unique')
local changes = {'att0', tonumber(h[1]) or 0, 'stalls', 0}
if h[3] and not redis.call('HGET', uniques, h[3]) then
  redis.call('HSET', uniques, h[3], lid)
end
local seq = redis.call('HINCRBY', meta, 'seq', 1)
redis.call('ZADD', ready, ready_score(h[2], seq), lid)
redis.call('HSET', jkey, 'state', 'queued', unpack(changes))
redis.call('HDEL', jkey, 'ended', 'reason', 'cancel', 'result', 'token', 'lease')
local v = bump_version(jkey)
redis.call('LPUSH', wake, '1')
redis.call('LTRIM', wake, 0, 99)
-- Cleared fields travel in the event with an empty value.
for _, name in ipairs({'ended', 'reason', 'cancel', 'result'}) do
  changes[#changes + 1] = name; changes[#changes + 1] = ''
end
emit(events, maxlen, queue, lid, 'queued', v, now, changes)
return {'retried', 'queued'}
