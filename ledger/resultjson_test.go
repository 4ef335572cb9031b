package ledger

import (
	"encoding/json"
	"testing"
)

// resultJSONParts is result_json as it was first written (a table of parts joined by
// table.concat), the reference lib.lua's single-concatenation form must match byte for byte.
const resultJSONParts = `
local function result_json_parts(id, rec)
  local r = {'{"send_id":', cjson.encode(id),
    ',"operation":', cjson.encode(get(rec, 'op')),
    ',"account_id":', cjson.encode(get(rec, 'account')),
    ',"state":', cjson.encode(get(rec, 'state'))}
  local function opt(name, v)
    if v ~= '' then
      r[#r + 1] = ',"' .. name .. '":'
      r[#r + 1] = cjson.encode(v)
    end
  end
  opt('reason', get(rec, 'reason'))
  opt('message_id', get(rec, 'message_id'))
  opt('chat_id', get(rec, 'chat_id'))
  r[#r + 1] = ',"attempts":' .. string.format('%d', num(rec, 'attempts'))
  opt('approved_by', get(rec, 'approved_by'))
  r[#r + 1] = ',"finished_at":' .. cjson.encode(NOW_ISO)
  if get(rec, 'dry_run') == '1' then r[#r + 1] = ',"dry_run":true' end
  local meta = get(rec, 'metadata')
  if meta ~= '' then r[#r + 1] = ',"metadata":' .. meta end
  if get(rec, 'revision') ~= '' then
    r[#r + 1] = ',"revision":' .. string.format('%d', num(rec, 'revision'))
    opt('revised_by', get(rec, 'revised_by'))
  end
  r[#r + 1] = '}'
  return table.concat(r)
end
local out = {}
for i, c in ipairs(cjson.decode(ARGV[7])) do
  local got, want = result_json(c.id, c.rec), result_json_parts(c.id, c.rec)
  if got ~= want then out[#out + 1] = i .. ': ' .. got .. ' ~= ' .. want end
end
return out
`

// TestResultJSONMatchesParts: result_json gives, for records with every optional field
// present, empty or absent and strings cjson escapes (quotes, backslashes, slashes, control
// bytes, DEL, UTF-8), the very bytes the parts-and-table.concat form gave.
func TestResultJSONMatchesParts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tricky := []string{"", "plain-1", `quo"te`, `back\slash`, "sl/ash", "new\nline\ttab\r", "\x01\x1f\x7f", "é ☃ 😀", "<&>"}
	type tc struct {
		ID  string            `json:"id"`
		Rec map[string]string `json:"rec"`
	}
	cases := []tc{{ID: "s1", Rec: map[string]string{}}}
	for i, s := range tricky {
		cases = append(cases, tc{ID: "s" + s, Rec: map[string]string{"op": s, "account": s, "state": "sent", "reason": s,
			"message_id": s, "chat_id": s, "attempts": "3", "approved_by": s, "revised_by": s}})
		full := map[string]string{"op": "chats_messages_send", "account": "acct", "state": "failed", "reason": s,
			"detail": s, "message_id": "m-" + s, "attempts": "12", "approved_by": "ops", "dry_run": "1",
			"metadata": `{"k":"v/\u00e9"}`, "revision": "2"}
		if i%2 == 0 {
			full["revised_by"] = s
			full["dry_run"] = "0"
			full["metadata"] = ""
			full["attempts"] = "0"
		}
		cases = append(cases, tc{ID: "id-" + s, Rec: full})
	}
	cases = append(cases, tc{ID: "r", Rec: map[string]string{"state": "sent", "revision": "1"}},
		tc{ID: "r", Rec: map[string]string{"state": "sent", "revision": "", "revised_by": "x"}})
	raw, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	src := luaGenerated() + luaSource(luaLibFile) + resultJSONParts
	args := []any{"{t}:", "1900000000000", "2030-03-04T05:06:07.089Z", "1000", "1000", "1000", string(raw)}
	res, err := e.rdb.Eval(e.ctx, src, []string{"{t}:results"}, args...).StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res {
		t.Error(m)
	}
	if len(cases) < 20 {
		t.Fatalf("%d cases", len(cases))
	}
}
