-- abandon.lua: the process running a job died (killed, crashed, out of memory) while its
-- worker lives on. The job is treated as a stall at once, as reap.lua would after the lease
-- expired: back to the front of its priority, or dead-lettered at the stall limit, or canceled
-- when its cancel was requested. Refused, with no change, for a stale fence token.
--
-- KEYS[1]  meta   KEYS[2] leases   KEYS[3] ready   KEYS[4] failed registry
-- KEYS[5]  canceled registry   KEYS[6] events   KEYS[7] uniques   KEYS[8] wake
-- KEYS[9]  job hash   KEYS[10] done list
-- ARGV[1]  epoch  ARGV[2] queue  ARGV[3] events maxlen  ARGV[4] local id  ARGV[5] fence token
-- ARGV[6]  stall limit   ARGV[7] failed TTL ms   ARGV[8] registry size limit
-- ARGV[9]  what happened (kept as the reason when the job is dead-lettered)   ARGV[10] wake cap
-- Returns  the job's new state ('queued', 'failed' or 'canceled'), or '' when refused
local meta, leases, ready, failed, canceled, events, uniques, wake, jkey, done =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local err = preflight(ARGV[1])
if err then return err end
local lid, token = ARGV[4], ARGV[5]
if not holds_lease(jkey, token) then return '' end
redis.call('ZREM', leases, lid)
return stall(jkey, lid, now_ms(), {
  queue = ARGV[2], maxlen = ARGV[3], max_stalls = tonumber(ARGV[6]), ttl = tonumber(ARGV[7]),
  limit = tonumber(ARGV[8]), why = ARGV[9], ready = ready, failed = failed,
  canceled = canceled, events = events, uniques = uniques, wake = wake, done = done,
  wake_cap = tonumber(ARGV[10])})
