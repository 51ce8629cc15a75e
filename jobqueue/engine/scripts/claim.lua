-- claim.lua: promote due scheduled jobs, then lease up to N ready jobs to one worker.
--
-- Each claimed job gets a lease: a deadline on the Redis clock, recorded in the leases set,
-- and a fence token from the queue's counter, which grows on every claim. Later calls about the
-- job (renew, progress, complete, fail, release) must present that token.
-- A paused queue still promotes due jobs but leases nothing.
-- Job keys are derived from ids popped here (ARGV[4] prefix): they are only known inside the
-- script. They share the queue's hash tag, so the script still touches one slot.
--
-- KEYS[1]  meta   KEYS[2] ready   KEYS[3] scheduled   KEYS[4] leases   KEYS[5] events
-- KEYS[6]  failed registry
-- ARGV[1]  epoch  ARGV[2] queue   ARGV[3] events maxlen   ARGV[4] job key prefix
-- ARGV[5]  worker name   ARGV[6] lease ms   ARGV[7] how many jobs at most
-- ARGV[8]  how many due scheduled jobs to promote at most
-- ARGV[9]  failed registry: ttl ms   ARGV[10] failed registry: size limit
-- Returns  {now_ms, next_due_ms or -1, {local id, token, deadline, {job hash fields}}...}
--          A job whose hash is missing or malformed is not leased: it is recorded as failed
--          with a reason (or dropped when its key is gone) and skipped.
local meta, ready, scheduled, leases, events, failed =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local err = preflight(ARGV[1])
if err then return err end
local queue, maxlen, prefix, worker = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local lease_ms, want, promote = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local failed_ttl, reg_limit = tonumber(ARGV[9]), tonumber(ARGV[10])
local now = now_ms()

local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, promote)
for _, lid in ipairs(due) do
  local jkey = prefix .. lid
  redis.call('ZREM', scheduled, lid)
  if job_state(jkey) == 'scheduled' then
    local prio = redis.call('HGET', jkey, 'prio')
    local seq = redis.call('HINCRBY', meta, 'seq', 1)
    redis.call('ZADD', ready, ready_score(prio, seq), lid)
    redis.call('HSET', jkey, 'state', 'queued')
    local v = bump_version(jkey)
    emit(events, maxlen, queue, lid, 'queued', v, now, {})
  end
end

local next_due = redis.call('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
local out = {now, tonumber(next_due[2] or '-1')}
if redis.call('HGET', meta, 'paused') == '1' then
  return out
end

local deadline = now + lease_ms
local popped = redis.call('ZPOPMIN', ready, want)
for i = 1, #popped, 2 do
  local lid = popped[i]
  local jkey = prefix .. lid
  -- What the job's fields say, in one call: state, attempts, workers, started, version.
  local read, h = pcall(redis.call, 'HMGET', jkey, 'state', 'att', 'workers', 'started', 'v')
  local state = read and h[1] or nil
  if state == 'queued' then
    local att = h[2] and string.match(h[2], '^%-?%d+$') and tonumber(h[2]) + 1
    if not h[2] then att = 1 end
    if att then
      local token = redis.call('HINCRBY', meta, 'fence', 1)
      local workers = h[3] and (h[3] .. ' ' .. worker) or worker
      local changes = {'att', att, 'token', token, 'worker', worker, 'workers', workers,
                       'last', now, 'lease', deadline}
      if not h[4] then
        changes[#changes + 1] = 'started'; changes[#changes + 1] = now
      end
      local v = next_version(h[5])
      redis.call('HSET', jkey, 'state', 'running', 'v', v, unpack(changes))
      redis.call('ZADD', leases, deadline, lid)
      emit(events, maxlen, queue, lid, 'running', v, now, changes)
      out[#out + 1] = {lid, token, deadline, redis.call('HGETALL', jkey)}
    else
      redis.call('HSET', jkey, 'state', 'failed', 'ended', now,
        'reason', 'malformed job data in Redis: attempts counter is not a number')
      local v = bump_version(jkey)
      add_to_registry(failed, lid, now, failed_ttl, reg_limit)
      emit(events, maxlen, queue, lid, 'failed', v, now, {'reason', 'malformed job data'})
    end
  elseif state == nil and redis.call('EXISTS', jkey) == 1 then
    -- Not a hash (WRONGTYPE): cannot be run or annotated; report it as failed.
    add_to_registry(failed, lid, now, failed_ttl, reg_limit)
    emit(events, maxlen, queue, lid, 'failed', 0, now,
      {'reason', 'job key holds a ' .. redis.call('TYPE', jkey)['ok'] .. ', not a hash'})
  end
  -- A missing key (deleted or expired) is simply dropped from the ready set.
end
return out
