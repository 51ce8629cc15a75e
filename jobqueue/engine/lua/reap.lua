-- reap.lua: reclaim running jobs whose lease expired (their worker died or hung).
--
-- Each such job counts a stall. Below the stall limit it goes back to the front of its
-- priority in the ready set, and its old fence token stops being valid (its state is no longer
-- running, and the next claim issues a new token). At the limit it is dead-lettered: failed,
-- with the reason. A job whose cancel was requested is canceled instead. Any live worker
-- may call this; it is safe to call concurrently. The shared logic is stall() in _lib.lua.
-- Job keys are derived from the ids found in the leases set (ARGV[4], ARGV[5] prefixes).
--
-- KEYS[1]  meta   KEYS[2] leases   KEYS[3] ready   KEYS[4] failed registry   KEYS[5] events
-- KEYS[6]  uniques   KEYS[7] wake   KEYS[8] canceled registry
-- ARGV[1]  epoch  ARGV[2] queue  ARGV[3] events maxlen  ARGV[4] job key prefix
-- ARGV[5]  done-list prefix   ARGV[6] stall limit   ARGV[7] batch size
-- ARGV[8]  failed TTL ms   ARGV[9] registry size limit   ARGV[10] wake cap
-- Returns  {requeued local ids, ended (dead or canceled) local ids}
local meta, leases, ready, failed, events, uniques, wake, canceled =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local err = preflight(ARGV[1])
if err then return err end
local queue, maxlen, prefix, done_prefix = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local max_stalls, batch = tonumber(ARGV[6]), tonumber(ARGV[7])
local ttl, limit = tonumber(ARGV[8]), tonumber(ARGV[9])
local now = now_ms()
local requeued, ended = {}, {}
local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', '(' .. now, 'LIMIT', 0, batch)
local k = {queue = queue, maxlen = maxlen, max_stalls = max_stalls, ttl = ttl, limit = limit,
  why = 'the lease expired (the worker died or hung)', ready = ready, failed = failed,
  canceled = canceled, events = events, uniques = uniques, wake = wake,
  wake_cap = tonumber(ARGV[10])}
for _, lid in ipairs(expired) do
  local jkey = prefix .. lid
  redis.call('ZREM', leases, lid)
  if job_state(jkey) == 'running' then
    k.done = done_prefix .. lid
    if stall(jkey, lid, now, k) == 'queued' then
      requeued[#requeued + 1] = lid
    else
      ended[#ended + 1] = lid
    end
  end
end
return {requeued, ended}
