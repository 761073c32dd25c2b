--- One place for the APIs that differ between Neovim 0.7 and 0.11: the current one where
--- this Neovim has it, the old one otherwise, so that no deprecated call is made on a
--- Neovim that deprecates it (0.10: `nvim_*_set_option`, `vim.loop`; 0.11:
--- `nvim_buf_add_highlight`, `termopen()`, `vim.health.report_*`).
local M = {}

local has = function(v) return vim.fn.has('nvim-' .. v) == 1 end

--- libuv (`vim.uv` from 0.10, `vim.loop` before).
M.uv = vim.uv or vim.loop

-- `nvim_set_option_value` takes `buf`/`win` from 0.8, but the old calls are only
-- deprecated from 0.10: keep them where they are current.
local new_options = has('0.10')

---@param buf integer
---@param name string
---@param value any
function M.buf_set(buf, name, value)
  if new_options then
    vim.api.nvim_set_option_value(name, value, { buf = buf })
  else
    vim.api.nvim_buf_set_option(buf, name, value)
  end
end

---@param win integer
---@param name string
---@param value any
function M.win_set(win, name, value)
  if new_options then
    vim.api.nvim_set_option_value(name, value, { win = win, scope = 'local' })
  else
    vim.api.nvim_win_set_option(win, name, value)
  end
end

---@param win integer
---@param name string
---@return any
function M.win_get(win, name)
  if new_options then return vim.api.nvim_get_option_value(name, { win = win }) end
  return vim.api.nvim_win_get_option(win, name)
end

--- Highlight `line` (0-based) from byte `col` to `end_col` (exclusive; -1: the end of
--- the line) with `group`, in namespace `ns`. An extmark on every version
--- (`nvim_buf_add_highlight` is deprecated in 0.11).
---@param buf integer
---@param ns integer
---@param group string
---@param line integer
---@param col integer
---@param end_col integer
function M.highlight(buf, ns, group, line, col, end_col)
  if end_col < 0 then
    end_col = #(vim.api.nvim_buf_get_lines(buf, line, line + 1, false)[1] or '')
  end
  if end_col <= col then return end
  vim.api.nvim_buf_set_extmark(buf, ns, line, col, { end_col = end_col, hl_group = group })
end

--- Run `cmd` in a terminal in the current (new, unmodified) buffer; the job id.
---@param cmd string[]
---@return integer
function M.terminal(cmd)
  if has('0.11') then return vim.fn.jobstart(cmd, { term = true }) end
  return vim.fn.termopen(cmd)
end

--- The health API: `vim.health.start/ok/warn/error/info` (0.10; 0.9 too), else the
--- `report_*` functions of `vim.health` (0.8) or of the `health` module (0.7).
---@return { start: fun(s: string), ok: fun(s: string), warn: fun(s: string), error: fun(s: string), info: fun(s: string) }
function M.health()
  local h = vim.health
  if h and h.start then return h end
  h = h or require('health')
  return { start = h.report_start, ok = h.report_ok, warn = h.report_warn, error = h.report_error, info = h.report_info }
end

return M
