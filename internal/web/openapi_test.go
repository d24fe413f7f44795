package web

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailferry/mailferry/internal/service"
)

// doc is a parsed OpenAPI document, kept generic on purpose: the test
// checks the JSON that clients get, not a Go model of it.
type doc = map[string]any

func parseOpenAPI(t *testing.T) doc {
	t.Helper()
	var d doc
	if err := json.Unmarshal(openAPI(), &d); err != nil {
		t.Fatalf("the OpenAPI document is not valid JSON: %v", err)
	}
	return d
}

func obj(t *testing.T, v any, what string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: want a JSON object, got %T", what, v)
	}
	return m
}

func TestOpenAPIIsVersion3(t *testing.T) {
	d := parseOpenAPI(t)
	v, _ := d["openapi"].(string)
	if !strings.HasPrefix(v, "3.") {
		t.Errorf("openapi = %q, want 3.x", v)
	}
	info := obj(t, d["info"], "info")
	if info["title"] == "" || info["version"] == "" {
		t.Errorf("info needs a title and a version: %v", info)
	}
	schemes := obj(t, obj(t, d["components"], "components")["securitySchemes"], "securitySchemes")
	bearer := obj(t, schemes["bearerAuth"], "bearerAuth")
	if bearer["type"] != "http" || bearer["scheme"] != "bearer" {
		t.Errorf("bearerAuth = %v, want an HTTP bearer scheme", bearer)
	}
}

// route is one pattern registered on the mux.
type route struct {
	method, path string
	authed       bool // wrapped in s.authed
}

// registeredRoutes reads the package's source for mux registrations such
// as m.HandleFunc("GET /api/projects", a(s.listProjects)). Reading the
// source (rather than the mux) keeps the test independent of net/http's
// internals, and a route added anywhere in the package is seen.
func registeredRoutes(t *testing.T) []route {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\b(?:HandleFunc|Handle)\("(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) ([^"]+)",\s*(.*)`)
	var out []route
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			out = append(out, route{method: m[1], path: m[2], authed: strings.HasPrefix(m[3], "a(") || strings.HasPrefix(m[3], "s.authed(")})
		}
	}
	// Guards the regexp itself: api.go registers far more than this.
	if len(out) < 10 {
		t.Fatalf("found only %d routes in the package source; has the registration style changed? %v", len(out), out)
	}
	return out
}

// openAPIPath turns a mux pattern's path into OpenAPI's: both use {name};
// Go's {name...} and {$} have no OpenAPI counterpart beyond the name.
func openAPIPath(p string) string {
	p = strings.ReplaceAll(p, "...}", "}")
	return strings.TrimSuffix(p, "{$}")
}

var httpMethods = []string{"get", "head", "post", "put", "patch", "delete", "options", "trace"}

func TestOpenAPICoversEveryRoute(t *testing.T) {
	d := parseOpenAPI(t)
	paths := obj(t, d["paths"], "paths")
	params := obj(t, obj(t, d["components"], "components")["parameters"], "components.parameters")
	registered := map[string]bool{}
	for _, r := range registeredRoutes(t) {
		p := openAPIPath(r.path)
		method := strings.ToLower(r.method)
		registered[method+" "+p] = true
		item, ok := paths[p].(map[string]any)
		if !ok {
			t.Errorf("route %s %s is not documented: add %q to paths in openapi.json", r.method, r.path, p)
			continue
		}
		o, ok := item[method].(map[string]any)
		if !ok {
			t.Errorf("route %s %s is not documented: add %q under paths[%q] in openapi.json", r.method, r.path, method, p)
			continue
		}
		resp, _ := o["responses"].(map[string]any)
		if len(resp) == 0 {
			t.Errorf("%s %s documents no response", r.method, p)
		}
		if o["operationId"] == nil || o["summary"] == nil {
			t.Errorf("%s %s needs an operationId and a summary", r.method, p)
		}
		// Security must match the code: token routes answer 401, public
		// ones declare an empty security list (the default is bearer).
		sec, hasSec := o["security"].([]any)
		public := hasSec && len(sec) == 0
		if r.authed && (public || resp["401"] == nil) {
			t.Errorf("%s %s needs a token: document a 401 answer and do not set security: []", r.method, p)
		}
		if !r.authed && !public {
			t.Errorf("%s %s is public: set security: [] on it", r.method, p)
		}
		// Every path parameter is declared.
		declared := map[string]bool{}
		for _, list := range []any{item["parameters"], o["parameters"]} {
			ps, _ := list.([]any)
			for _, pv := range ps {
				pm := obj(t, pv, "parameter")
				if ref, ok := pm["$ref"].(string); ok {
					pm = obj(t, params[strings.TrimPrefix(ref, "#/components/parameters/")], ref)
				}
				if pm["in"] == "path" {
					declared[pm["name"].(string)] = true
				}
			}
		}
		for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(p, -1) {
			if !declared[m[1]] {
				t.Errorf("%s %s: path parameter %q is not declared", r.method, p, m[1])
			}
		}
	}
	// And nothing is documented that the server does not serve.
	for p, item := range paths {
		for _, method := range httpMethods {
			if _, ok := obj(t, item, p)[method]; ok && !registered[method+" "+p] {
				t.Errorf("%s %s is documented but not registered in routes()", strings.ToUpper(method), p)
			}
		}
	}
}

func TestOpenAPIRefsResolve(t *testing.T) {
	d := parseOpenAPI(t)
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				var cur any = d
				for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					m, _ := cur.(map[string]any)
					cur = m[part]
				}
				if !strings.HasPrefix(ref, "#/") || cur == nil {
					t.Errorf("%s: $ref %q does not resolve", at, ref)
				}
			}
			for k, e := range x {
				walk(e, at+"/"+k)
			}
		case []any:
			for _, e := range x {
				walk(e, at+"[]")
			}
		}
	}
	walk(d, "#")
}

// fill sets every exported field reachable from v to a non-zero value, so
// that no omitempty/omitzero field is left out of its JSON.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0))
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				fill(v.Field(i))
			}
		}
	}
}

func jsonKeys(t *testing.T, v any) []string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// schemaFields returns a component schema's property names and required
// names, following allOf.
func schemaFields(t *testing.T, schemas map[string]any, name string) (props, required []string) {
	t.Helper()
	s, ok := schemas[name].(map[string]any)
	if !ok {
		t.Fatalf("components.schemas.%s is missing", name)
	}
	parts := []any{s}
	if all, ok := s["allOf"].([]any); ok {
		parts = all
	}
	for _, p := range parts {
		pm := obj(t, p, name)
		if ref, ok := pm["$ref"].(string); ok {
			pp, rr := schemaFields(t, schemas, strings.TrimPrefix(ref, "#/components/schemas/"))
			props, required = append(props, pp...), append(required, rr...)
			continue
		}
		for k := range obj(t, pm["properties"], name+".properties") {
			props = append(props, k)
		}
		req, _ := pm["required"].([]any)
		for _, r := range req {
			required = append(required, r.(string))
		}
	}
	sort.Strings(props)
	sort.Strings(required)
	return props, required
}

// TestOpenAPISchemasMatchGoTypes keeps the schemas in step with the JSON
// tags: a field added to, renamed in or removed from a type sent or
// received by the API fails here until openapi.json follows.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	d := parseOpenAPI(t)
	schemas := obj(t, obj(t, d["components"], "components")["schemas"], "components.schemas")
	cases := []struct {
		schema string
		v      any
		// response: the fields always sent (not omitempty) must be
		// exactly the schema's required ones.
		response bool
	}{
		{"Owner", service.Owner{}, true},
		{"ProjectSummary", service.ProjectSummary{}, true},
		{"HostLoad", service.HostLoad{}, true},
		{"HostLoads", hostLoads{}, true},
		{"Endpoint", service.Endpoint{}, true},
		{"EndpointInput", service.Endpoint{}, false},
		{"Preset", service.Preset{}, true},
		{"Options", service.Options{}, false},
		{"ProjectInput", service.ProjectInput{}, false},
		{"ProjectUpdate", service.ProjectUpdate{}, false},
		{"EndpointUpdate", service.EndpointUpdate{}, false},
		{"Project", service.Project{}, true},
		{"AdminCredentials", service.AdminCredentials{}, false},
		{"AdminInfo", service.AdminInfo{}, true},
		{"MailboxInput", mailboxBody{}, false},
		{"MailboxUpdate", mailboxBody{}, false},
		{"Mailbox", service.Mailbox{}, true},
		{"StatusEvent", service.StatusEvent{}, true},
		{"PassInput", service.PassInput{}, false},
		{"Pass", service.Pass{}, true},
		{"MailboxPass", service.MailboxPass{}, true},
		{"PlanRow", service.PlanRow{}, true},
		{"MailboxOptions", service.MailboxOptions{}, true},
		{"PlanPreview", service.PlanPreview{}, true},
		{"PlanPreviewRow", service.PlanPreviewRow{}, true},
		{"FailedItem", service.FailedItem{}, true},
		{"Solution", service.Solution{}, true},
		{"RowError", service.RowError{}, true},
		{"Error", errorBody{}, true},
	}
	for _, c := range cases {
		props, required := schemaFields(t, schemas, c.schema)
		full := reflect.New(reflect.TypeOf(c.v)).Elem()
		fill(full)
		if got := jsonKeys(t, full.Interface()); !slices.Equal(got, props) {
			t.Errorf("schema %s has properties %v, but the Go type's JSON has %v", c.schema, props, got)
		}
		if c.response {
			if got := jsonKeys(t, c.v); !slices.Equal(got, required) {
				t.Errorf("schema %s requires %v, but the Go type always sends %v", c.schema, required, got)
			}
		}
	}
}

func enumOf(t *testing.T, d doc, name string) []string {
	t.Helper()
	s := obj(t, obj(t, obj(t, d["components"], "components")["schemas"], "schemas")[name], name)
	var out []string
	for _, v := range s["enum"].([]any) {
		out = append(out, v.(string))
	}
	return out
}

func TestOpenAPIEnums(t *testing.T) {
	d := parseOpenAPI(t)
	statuses := []service.Status{service.StatusNotStarted, service.StatusQueued, service.StatusVerifying, service.StatusReady,
		service.StatusFailed, service.StatusMigrating, service.StatusCompleted, service.StatusCompletedWithErrors, service.StatusStopped,
		service.StatusWaitingForUser}
	var want []string
	for _, s := range statuses {
		want = append(want, string(s))
	}
	if got := enumOf(t, d, "Status"); !slices.Equal(got, want) {
		t.Errorf("Status enum = %v, want %v", got, want)
	}
	kinds := []service.PassKind{service.PassVerify, service.PassTrial, service.PassPreStage, service.PassFull, service.PassDelta, service.PassRetryErrors, service.PassProof}
	want = nil
	for _, k := range kinds {
		want = append(want, string(k))
	}
	if got := enumOf(t, d, "PassKind"); !slices.Equal(got, want) {
		t.Errorf("PassKind enum = %v, want %v", got, want)
	}
	want = nil
	for _, c := range service.Classes() {
		want = append(want, string(c))
	}
	if got := enumOf(t, d, "ErrorClass"); !slices.Equal(got, want) {
		t.Errorf("ErrorClass enum = %v, want %v", got, want)
	}
}

func TestOpenAPIServed(t *testing.T) {
	s := New(nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/openapi.json: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if string(body) != string(openAPI()) {
		t.Error("GET /api/openapi.json does not serve openAPI()")
	}
}
