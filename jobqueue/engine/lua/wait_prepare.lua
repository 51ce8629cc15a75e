-- wait_prepare.lua: register a waiter on a job's end, unless it already ended.
--
-- Not a transition. wait() calls this, then blocks on the job's done list (BLPOP): a job that
-- ends in between has already pushed to the list, so no wake-up is lost and nothing polls.
--
-- KEYS[1]  job hash
-- Returns  the job's state when it has ended (or '' when there is no such job),
--          'waiting' when a waiter was registered
local jkey = KEYS[1]
local state = job_state(jkey)
if not state then return '' end
if state == 'succeeded' or state == 'failed' or state == 'canceled' then return state end
redis.call('HINCRBY', jkey, 'w', 1)
return 'waiting'
