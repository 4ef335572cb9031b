package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
)

var pageNames = []string{"login", "queue", "send", "bulk", "accounts", "activity", "review", "error"}

func parseTemplates() map[string]*template.Template {
	funcs := template.FuncMap{
		"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("Mon 2 Jan 15:04 UTC")
		},
		"left": func(t, now time.Time) string { return humanLeft(t.Sub(now)) },
		"soon": func(t, now time.Time) bool { return t.Sub(now) < time.Hour },
		"size": humanSize,
		"isImage": func(ct string) bool {
			return strings.HasPrefix(ct, "image/")
		},
		"short": func(s string, n int) string {
			if len(s) <= n {
				return s
			}
			return s[:n] + "…"
		},
	}
	out := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+name+".html"))
		out[name] = t
	}
	return out
}

func humanLeft(d time.Duration) string {
	if d <= 0 {
		return "due now"
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds left", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm left", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %02dm left", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd left", int(d.Hours()/24))
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// render writes page with data; b (nil on the sign-in page) is the layout's.
// A template failure is a 500 page, never half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any, b *base, _ any) {
	if data == nil {
		data = map[string]any{}
	}
	if b == nil {
		b = &base{}
	}
	data["B"] = b
	name := "layout.html"
	if data["Partial"] == true {
		name = "rows"
	}
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, name, data); err != nil {
		c.log.Error("console template failed", zap.String("page", page), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage answers status with a page saying what happened.
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, who *Identity, status int, msg string) {
	b := &base{Who: who, Title: http.StatusText(status), Problem: msg}
	if sess, _ := c.sessions.fromRequest(r); sess != nil && who != nil {
		b.CSRF = sess.CSRF
	}
	c.render(w, r, status, "error", map[string]any{"Status": status}, b, nil)
}
