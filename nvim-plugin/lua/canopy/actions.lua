--- What the commands and sidebar keys do. Quick requests (approve, deny, send, explain)
--- go over the RPC channel; those that can take seconds (new, stop, rm) run the CLI as a
--- job so the editor never blocks, and `new` gets the CLI's `--issue` handling.
local config = require('canopy.config')
local format = require('canopy.format')
local rpc = require('canopy.rpc')
local state = require('canopy.state')

local M = {}
local H = {}

--- Terminal buffers of `canopy attach`, by session name, reused while their job runs.
---@type table<string, { buf: integer, job: integer }>
H.attached = {}

---@param msg string
---@param level integer|nil
function H.say(msg, level) vim.notify('canopy: ' .. msg, level or vim.log.levels.INFO) end

--- Run `canopy ARGS` as a job; `done(ok, output)` runs on the main loop when it ends.
---@param args string[]
---@param done fun(ok: boolean, output: string)|nil
---@return integer job
function M.cli(args, done)
  local out = {}
  local collect = function(_, data) vim.list_extend(out, data) end
  local cmd = { config.options.cmd }
  vim.list_extend(cmd, args)
  local job = vim.fn.jobstart(cmd, {
    cwd = vim.fn.getcwd(),
    stdout_buffered = true,
    stderr_buffered = true,
    on_stdout = collect,
    on_stderr = collect,
    on_exit = function(_, code)
      local text = vim.trim(table.concat(out, '\n'))
      if done then
        done(code == 0, text)
      elseif code ~= 0 then
        H.say(text ~= '' and text or ('`canopy %s` failed'):format(table.concat(args, ' ')), vim.log.levels.ERROR)
      end
    end,
  })
  if job <= 0 then H.say(('cannot run %s'):format(config.options.cmd), vim.log.levels.ERROR) end
  return job
end

--- An RPC request whose failure is reported to the user.
---@param method string
---@param params { name: string }|table
---@param what string what the request does, for the message
---@return boolean ok, any result
function M.request(method, params, what)
  local ok, res = rpc.request(method, params)
  if not ok then
    -- Neovim cannot read Canopy's error maps ("unknown error"): say what we know.
    local s = state.sessions[params.name]
    if tostring(res):find('unknown error', 1, true) then
      if not s then
        res = ('no session named %q'):format(params.name)
      elseif s.state.kind == 'exited' then
        res = params.name .. ' is not running'
      else
        res = ('the host refused; `canopy %s %s` says why'):format(method, params.name)
      end
    end
    H.say(('%s failed: %s'):format(what, tostring(res)), vim.log.levels.ERROR)
  end
  return ok, res
end

---@param name string
---@param agent string|nil
---@param issue string|nil
function M.new(name, agent, issue)
  local args = { 'new', name }
  agent = agent or config.options.default_agent
  if agent then vim.list_extend(args, { '--agent', agent }) end
  if issue then vim.list_extend(args, { '--issue', issue }) end
  M.cli(args)
end

--- Whether a `vim.ui.input` answer is a cancel. Neovim 0.7's built-in passes nil for an
--- empty answer too, so there an empty answer to an optional prompt cannot cancel.
---@param answer string|nil
---@return boolean
function H.cancelled(answer)
  return answer == nil and vim.fn.has('nvim-0.8') == 1
end

--- `n` in the sidebar: ask (with `vim.ui.input`) for a name, an agent and an optional
--- issue; an empty name or a cancelled prompt creates nothing.
function M.new_interactive()
  vim.ui.input({ prompt = 'New session name: ' }, function(name)
    name = name and vim.trim(name)
    if not name or name == '' then return end
    vim.ui.input({ prompt = 'Agent: ', default = config.options.default_agent or '' }, function(agent)
      if H.cancelled(agent) then return end
      agent = vim.trim(agent or '')
      vim.ui.input({ prompt = 'Issue (optional): ' }, function(issue)
        if H.cancelled(issue) then return end
        issue = vim.trim(issue or '')
        M.new(name, agent ~= '' and agent or nil, issue ~= '' and issue or nil)
      end)
    end)
  end)
end

---@param name string
function M.approve(name)
  if M.request('approve', { name = name }, 'approve ' .. name) then H.say('approved ' .. name) end
end

---@param name string
---@param reason string|nil
function M.deny(name, reason)
  local params = { name = name }
  if reason and reason ~= '' then params.reason = reason end
  if M.request('deny', params, 'deny ' .. name) then H.say('denied ' .. name) end
end

---@param name string
---@param text string
function M.send(name, text)
  M.request('send', { name = name, text = text, enter = true }, 'send to ' .. name)
end

---@param name string
function M.stop(name)
  M.cli({ 'stop', name })
end

--- Ask a yes/no question with `vim.ui.select` (so a picker plugin can show it); `yes()`
--- runs only on Yes.
---@param question string
---@param yes_label string
---@param yes fun()
function H.ask(question, yes_label, yes)
  vim.ui.select({ yes_label, 'Cancel' }, { prompt = question }, function(_, idx)
    if idx == 1 then yes() end
  end)
end

---@param name string
---@param opts { confirm: boolean|nil, force: boolean|nil, asked: boolean|nil }|nil
function M.remove(name, opts)
  opts = opts or {}
  if opts.confirm then
    return H.ask(('Remove session %s (its worktree and branch)?'):format(name), 'Remove', function()
      M.remove(name, { force = opts.force, asked = true })
    end)
  end
  local args = { 'rm', name }
  if opts.force then table.insert(args, '--force') end
  M.cli(args, function(ok, out)
    if ok then return H.say('removed ' .. name) end
    H.say(out, vim.log.levels.ERROR)
    -- Refused because work would be lost: the only way through is an explicit force.
    if opts.asked and not opts.force and out:find('--force', 1, true) then
      H.ask(('Throw away the work in %s?'):format(name), 'Force remove', function()
        M.remove(name, { force = true })
      end)
    end
  end)
end

--- A terminal running `canopy attach NAME` in a split, reused while it runs.
---@param name string
function M.attach(name)
  local a = H.attached[name]
  if a and vim.api.nvim_buf_is_valid(a.buf) and vim.fn.jobwait({ a.job }, 0)[1] == -1 then
    for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
      if vim.api.nvim_win_get_buf(w) == a.buf then
        vim.api.nvim_set_current_win(w)
        vim.cmd('startinsert')
        return
      end
    end
    vim.cmd(config.options.attach.split)
    vim.api.nvim_win_set_buf(0, a.buf)
    vim.cmd('startinsert')
    return
  end
  vim.cmd(config.options.attach.split)
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_win_set_buf(0, buf)
  local job = require('canopy.compat').terminal({ config.options.cmd, 'attach', name })
  pcall(vim.api.nvim_buf_set_name, buf, 'canopy://attach/' .. name)
  H.attached[name] = { buf = buf, job = job }
  vim.cmd('startinsert')
end

--- The session's scrollback and screen as text, in a scratch buffer in a split (the
--- attach split's), the cursor on the last line; `q` closes it.
---@param name string
function M.capture(name)
  local ok, r = M.request('capture', { name = name }, 'capture ' .. name)
  if not ok then return end
  local lines = vim.split(r.text or '', '\n', { plain = true })
  if lines[#lines] == '' then table.remove(lines) end
  vim.cmd(config.options.attach.split)
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_win_set_buf(0, buf)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  local compat = require('canopy.compat')
  compat.buf_set(buf, 'modifiable', false)
  compat.buf_set(buf, 'bufhidden', 'wipe')
  compat.buf_set(buf, 'filetype', 'canopy-capture')
  pcall(vim.api.nvim_buf_set_name, buf, 'canopy://capture/' .. name)
  vim.api.nvim_win_set_cursor(0, { math.max(#lines, 1), 0 })
  vim.keymap.set('n', 'q', '<cmd>close<cr>', { buffer = buf, nowait = true, silent = true })
end

---@param name string
---@return canopy.Session|nil
function H.session(name)
  rpc.ensure(true)
  local s = state.sessions[name]
  if not s then H.say(('no session named %q'):format(name), vim.log.levels.ERROR) end
  return s
end

---@param s canopy.Session
---@return string[]
function M.inspect_lines(s)
  local u = s.usage or {}
  local t = state.present(u.tokens) and u.tokens or {}
  local present = state.present
  local lines = {
    ('%s — %s%s'):format(s.name, s.agent, present(u.model) and (' (' .. u.model .. ')') or ''),
    '',
    ('state     %s'):format(format.state(s)),
    ('cost      %s'):format(present(u.cost_usd) and ('$%.4f'):format(u.cost_usd) or 'unknown'),
    ('tokens    in %s  out %s  cache write %s/%s  cache read %s  reasoning %s'):format(
      format.tokens(t.input), format.tokens(t.output), format.tokens(t.cache_write_5m),
      format.tokens(t.cache_write_1h), format.tokens(t.cache_read), format.tokens(t.reasoning)),
  }
  if format.url(s) ~= '' then table.insert(lines, 4, ('url       %s'):format(format.url(s))) end
  local c = present(u.context) and u.context or {}
  if present(c.window) and c.window > 0 then
    table.insert(lines, ('context   %s / %s (%s)'):format(format.tokens(c.used), format.tokens(c.window), format.context(s)))
  else
    table.insert(lines, ('context   %s (window unknown)'):format(format.tokens(c.used)))
  end
  local tc = present(u.tool_calls) and u.tool_calls or {}
  local by = {}
  for tool, n in pairs(present(tc.by_tool) and tc.by_tool or {}) do table.insert(by, ('%s %d'):format(tool, n)) end
  table.sort(by)
  table.insert(lines, ('tools     %d%s'):format(tc.total or 0, #by > 0 and ('  (' .. table.concat(by, ', ') .. ')') or ''))
  -- wall_ms is as of the last usage report; a running session's clock goes on.
  local wall = u.wall_ms
  if s.state.kind ~= 'exited' and present(s.created_at) then wall = os.time() * 1000 - s.created_at end
  table.insert(lines, ('time      wall %s  active %s'):format(format.duration(wall), format.duration(u.active_ms)))
  table.insert(lines, ('lines     +%d -%d'):format(u.lines_added or 0, u.lines_removed or 0))
  table.insert(lines, ('branch    %s'):format(s.branch))
  if format.comments(s) ~= '' then table.insert(lines, ('review    %s pending'):format(format.comments(s))) end
  if format.pr(s) ~= '' then table.insert(lines, ('pr        %s  %s'):format(format.pr(s), s.pr.url or '')) end
  if format.radar(s) ~= '' then
    table.insert(lines, ('radar     %s'):format(format.radar(s)))
    for _, f in ipairs(present(s.radar.conflicts) and s.radar.conflicts or s.radar.shared_files or {}) do
      table.insert(lines, '          ' .. f)
    end
  end
  if present(s.task) then
    table.insert(lines, ('issue     %s  %s'):format(s.task.id or '', s.task.title or ''))
    if present(s.task.url) then table.insert(lines, ('          %s'):format(s.task.url)) end
  end
  return lines
end

--- A float with the session's usage.
---@param name string
function M.inspect(name)
  local s = H.session(name)
  if s then require('canopy.float').show(M.inspect_lines(s), 'canopy-inspect') end
end

--- A float with why the session is in its state.
---@param name string
function M.explain(name)
  local ok, e = M.request('explain', { name = name }, 'explain ' .. name)
  if not ok then return end
  local present = state.present
  local lines = {
    ('%s: %s (from %s)'):format(e.name, e.state.kind, e.state.source),
    ('health: %s — %s'):format(e.health, e.health_detail or ''),
  }
  if present(e.screen) then table.insert(lines, 'screen: ' .. e.screen) end
  table.insert(lines, '')
  table.insert(lines, 'signals (oldest first):')
  for _, sig in ipairs(e.signals or {}) do
    table.insert(lines, ('  %s %s%s %s'):format(sig.source, sig.event,
      present(sig.detail) and (' ' .. sig.detail) or '', sig.outcome))
  end
  require('canopy.float').show(lines, 'canopy-explain')
end

---@param name string
function M.diff(name)
  local s = H.session(name)
  if s then require('canopy.diff').quickfix(s) end
end

--- The review tab of session `name` (nil: the session here; see `canopy.review`).
---@param name string|nil
function M.review(name)
  require('canopy.review').open(name)
end

return M
