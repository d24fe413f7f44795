// Package secrets keeps credentials (mailbox passwords, OAuth refresh
// tokens) encrypted at rest, so that a copied database file or backup does
// not hand out access to every migrated mailbox.
//
// A Box seals values with AES-256-GCM under a single installation key that
// LoadKey takes from MAILFERRY_SECRET_KEY or from a key file it creates on
// first start. Each sealed value is bound to the record that owns it through
// the associated data, so a ciphertext moved to another row does not open.
package secrets
