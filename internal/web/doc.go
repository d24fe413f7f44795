// Package web serves the self-service portal (server-rendered pages with
// email-link login, sessions and CSRF tokens) and the JSON API (API
// tokens) over the service: ownership checks on every route, errors with
// the field or CSV rows at fault, health and metrics.
package web
