-- claim.lua: promote due scheduled jobs, then lease up to N ready jobs to one worker.
--
-- Each claimed job gets a lease (grant_lease in _lib.lua): a deadline on the Redis clock,
-- recorded in the leases set, and a fence token from the queue's counter, which grows with
-- every lease. Later calls about the job (renew, progress, complete, fail, release) must
-- present that token.
-- A paused queue still promotes due jobs but leases nothing.
-- Each call carries a request id (ARGV[11]); what it leased is kept in KEYS[7] while the leases
-- last. The same call sent again (its reply was lost: the connection dropped after Redis ran
-- it) finds that key and returns the jobs still leased under those tokens, leasing no more, so
-- a lost reply never leases a job that no worker knows of.
-- Job keys are derived from ids popped here (ARGV[4] prefix): they are only known inside the
-- script. They share the queue's hash tag, so the script still touches one slot.
--
-- KEYS[1]  meta   KEYS[2] ready   KEYS[3] scheduled   KEYS[4] leases   KEYS[5] events
-- KEYS[6]  failed registry   KEYS[7] this call's request key (claim:<request id>)
-- ARGV[1]  epoch  ARGV[2] queue   ARGV[3] events maxlen   ARGV[4] job key prefix
-- ARGV[5]  worker name   ARGV[6] lease ms   ARGV[7] how many jobs at most
-- ARGV[8]  how many due scheduled jobs to promote at most
-- ARGV[9]  failed registry: ttl ms   ARGV[10] failed registry: size limit
-- ARGV[11] request id (random, one per call: a re-sent call carries the same)
-- Returns  {now_ms, next_due_ms or -1, {local id, token, deadline, {job hash fields}}...}
--          A job whose hash is missing or malformed is not leased: it is recorded as failed
--          with a reason (or dropped when its key is gone) and skipped.
local meta, ready, scheduled, leases, events, failed, request =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local err = preflight(ARGV[1], 6)
if err then return err end
local queue, maxlen, prefix, worker = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local lease_ms, want, promote = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local failed_ttl, reg_limit = tonumber(ARGV[9]), tonumber(ARGV[10])
local now = now_ms()

local earlier = redis.call('GET', request)
if earlier then -- this call ran already: the same jobs, if they are still leased to it
  local out = {now, -1}
  local pairs_ = {}
  for word in string.gmatch(earlier, '%S+') do pairs_[#pairs_ + 1] = word end
  for i = 1, #pairs_, 2 do
    local lid, token = pairs_[i], pairs_[i + 1]
    local jkey = prefix .. lid
    if holds_lease(jkey, token) then
      local deadline = tonumber(redis.call('HGET', jkey, 'lease'))
      out[#out + 1] = {lid, token, deadline, redis.call('HGETALL', jkey)}
    end
  end
  return out
end

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
      local token, deadline, changes =
        grant_lease(meta, leases, lid, worker, now, lease_ms, att, h[3], not h[4])
      local v = next_version(h[5])
      redis.call('HSET', jkey, 'state', 'running', 'v', v, unpack(changes))
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
if #out > 2 then
  local leased = {}
  for i = 3, #out do leased[#leased + 1] = out[i][1] .. ' ' .. out[i][2] end
  redis.call('SET', request, table.concat(leased, ' '), 'PX', lease_ms)
end
return out
