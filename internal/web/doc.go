// Package web serves the JSON API (and later the portal) over the
// service: authentication, ownership checks on every route, errors as
// JSON with the field or CSV rows at fault, health and metrics.
package web
