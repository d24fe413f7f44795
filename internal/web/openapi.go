package web

import _ "embed" // for the OpenAPI document

// openAPIDoc is the OpenAPI 3.0.3 description of every route in routes().
// openapi_test.go fails when a route is registered without being
// documented here, or when a schema no longer matches the Go types.
//
//go:embed openapi.json
var openAPIDoc []byte

// openAPI returns the OpenAPI document served at /api/openapi.json.
func openAPI() []byte { return openAPIDoc }
