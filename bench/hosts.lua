-- wrk -s bench/hosts.lua URL -- HOSTS_FILE
-- Each request names the next host of HOSTS_FILE (one per line) in its Host
-- header, so a gate has to reduce and look up many hosts rather than one
-- memoised answer.  Requests are formatted once, in init, to keep wrk's
-- own cost per request as low as with a fixed request.

local requests = {}
local next_request = 0

function init(args)
    local path = wrk.path
    for host in io.lines(args[1]) do
        requests[#requests + 1] = wrk.format("GET", path, { Host = host })
    end
    -- threads start at different offsets, not in lockstep
    next_request = math.random(#requests) - 1
end

function request()
    next_request = next_request % #requests + 1
    return requests[next_request]
end
