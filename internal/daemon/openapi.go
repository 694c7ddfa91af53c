package daemon

import (
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var pathParamRe = regexp.MustCompile(`\{([a-z]+)\}`)

// openAPI builds the OpenAPI 3 document from the route table, so it cannot drift from what
// the daemon serves; schemas come from the api package types by reflection.
func (d *Daemon) openAPI() map[string]any {
	paths := map[string]map[string]any{}
	schemas := map[string]any{}
	for _, rt := range d.routes {
		p := paths[rt.Path]
		if p == nil {
			p = map[string]any{}
			paths[rt.Path] = p
		}
		op := map[string]any{
			"summary":              rt.Summary,
			"operationId":          operationID(rt),
			"x-finvirt-permission": rt.Perm.String(),
			"responses": map[string]any{
				strconv.Itoa(rt.Status): response(rt.Reply, schemas),
				"default":               map[string]any{"description": "error", "content": jsonContent(ref("Error", schemas, errorType))},
			},
		}
		if rt.Action != "" {
			op["x-finvirt-audit-action"] = rt.Action
		}
		var params []any
		for _, m := range pathParamRe.FindAllStringSubmatch(rt.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.Body != nil {
			op["requestBody"] = map[string]any{"required": true, "content": jsonContent(schemaFor(reflect.TypeOf(rt.Body), schemas))}
		}
		p[strings.ToLower(rt.Method)] = op
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "finvirt API", "version": "1.0"},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
		"security": []any{map[string]any{"bearer": []any{}}},
	}
}

var errorType = reflect.TypeOf(struct {
	Error string `json:"error"`
	Code  int    `json:"code"`
}{})

func operationID(rt *Route) string {
	s := strings.NewReplacer("/1.0", "", "/", "_", "{", "", "}", "").Replace(rt.Path)
	return strings.ToLower(rt.Method) + s
}

func response(v any, schemas map[string]any) map[string]any {
	if v == nil {
		return map[string]any{"description": "success"}
	}
	return map[string]any{"description": "success", "content": jsonContent(schemaFor(reflect.TypeOf(v), schemas))}
}

func jsonContent(schema any) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": schema}}
}

func ref(name string, schemas map[string]any, t reflect.Type) map[string]any {
	if _, ok := schemas[name]; !ok {
		schemas[name] = map[string]any{} // break recursion
		schemas[name] = structSchema(t, schemas)
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

var timeType = reflect.TypeOf(time.Time{})

func schemaFor(t reflect.Type, schemas map[string]any) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t.Kind() == reflect.Pointer:
		return schemaFor(t.Elem(), schemas)
	case t.Kind() == reflect.Struct:
		if t.Name() == "" {
			return structSchema(t, schemas)
		}
		return ref(t.Name(), schemas, t)
	case t.Kind() == reflect.Slice:
		return map[string]any{"type": "array", "items": schemaFor(t.Elem(), schemas)}
	case t.Kind() == reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaFor(t.Elem(), schemas)}
	case t.Kind() == reflect.String:
		return map[string]any{"type": "string"}
	case t.Kind() == reflect.Bool:
		return map[string]any{"type": "boolean"}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return map[string]any{"type": "integer"}
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return map[string]any{"type": "number"}
	}
	return map[string]any{}
}

func structSchema(t reflect.Type, schemas map[string]any) map[string]any {
	props := map[string]any{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = schemaFor(f.Type, schemas)
	}
	return map[string]any{"type": "object", "properties": props}
}

func (d *Daemon) handleOpenAPI(w http.ResponseWriter, r *http.Request, rc *Request) error {
	return writeJSON(w, http.StatusOK, d.openAPI())
}
