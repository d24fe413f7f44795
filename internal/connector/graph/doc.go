// Package graph is the Microsoft 365 connector: a source and destination
// reached through Microsoft Graph's mail API with an app's OAuth 2.0
// client credentials. (Full documentation follows in this file.)
package graph
