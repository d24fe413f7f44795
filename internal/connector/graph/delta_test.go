package graph

import (
	"context"
	"errors"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

func TestDeltaRounds(t *testing.T) {
	e := newEnv(t, nil) // the server's delta pages hold 10 messages
	ids := make([]string, 25)
	for i := range ids {
		ids[i] = e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: msg(i, "")})
	}
	c := e.open(t, connector.RoleSource, nil)
	inbox := folderByPath(t, c, "INBOX")

	// Round 1, full: every message, new, over several pages.
	byID, _, l1 := listAll(t, c, inbox, connector.ListOptions{Batch: 10})
	if len(byID) != 25 || l1.Reset {
		t.Fatalf("full listing: %d messages, reset %v", len(byID), l1.Reset)
	}
	// Three pages of the created query (10 a page), one each of the
	// updated and deleted ones (asked for 1000 a page).
	if n := e.srv.RequestCount(graphserver.RouteDelta); n != 3+1+1 {
		t.Fatalf("delta requests %d, want 5: the pages were not followed", n)
	}

	// Round 2: nothing changed.
	byID, _, l2 := listAll(t, c, inbox, connector.ListOptions{Since: l1.Cursor, Changes: true})
	if len(byID) != 0 || l2.Reset || l2.Cursor == "" {
		t.Fatalf("unchanged folder: %d messages, reset %v", len(byID), l2.Reset)
	}

	// Round 3: one new, one read, one flagged by PATCH elsewhere, one
	// deleted, one moved out.
	fresh := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: msg(100, "")})
	e.srv.SetRead(alice, ids[3], true)
	e.srv.DeleteMessage(alice, ids[5])
	e.srv.MoveMessage(alice, ids[7], "Archive")
	byID, all, l3 := listAll(t, c, inbox, connector.ListOptions{Since: l2.Cursor, Changes: true})
	want := map[string]connector.Change{fresh: connector.ChangeNew, ids[3]: connector.ChangeFlags, ids[5]: connector.ChangeRemoved, ids[7]: connector.ChangeRemoved}
	if len(byID) != len(want) {
		t.Fatalf("round 3 listed %d messages: %+v", len(all), all)
	}
	for id, ch := range want {
		m, ok := byID[connector.ID(id)]
		if !ok || m.Change != ch {
			t.Errorf("message %s: %+v, want change %v", id, m, ch)
		}
	}
	if m := byID[connector.ID(ids[3])]; !mail.HasFlag(m.Flags, mail.FlagSeen) {
		t.Errorf("flag change without \\Seen: %v", m.Flags)
	}
	if m := byID[connector.ID(fresh)]; m.Identity != identityOf(msg(100, "")) {
		t.Error("new message's identity differs from its MIME's")
	}

	// Round 4 without Changes: only new messages; the flag change made
	// now is reported once Changes is asked for.
	e.srv.SetRead(alice, ids[4], true)
	fresh2 := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: msg(101, "")})
	byID, _, l4 := listAll(t, c, inbox, connector.ListOptions{Since: l3.Cursor})
	if len(byID) != 1 || byID[connector.ID(fresh2)].Change != connector.ChangeNew {
		t.Fatalf("round 4: %+v", byID)
	}
	byID, _, l5 := listAll(t, c, inbox, connector.ListOptions{Since: l4.Cursor, Changes: true})
	if len(byID) != 1 || byID[connector.ID(ids[4])].Change != connector.ChangeFlags {
		t.Fatalf("round 5: %+v", byID)
	}

	// A message created and changed in one round is listed once, as new.
	fresh3 := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: msg(102, "")})
	e.srv.SetRead(alice, fresh3, true)
	byID, _, l6 := listAll(t, c, inbox, connector.ListOptions{Since: l5.Cursor, Changes: true})
	if len(byID) != 1 || byID[connector.ID(fresh3)].Change != connector.ChangeNew || !mail.HasFlag(byID[connector.ID(fresh3)].Flags, mail.FlagSeen) {
		t.Fatalf("created and changed: %+v", byID)
	}

	// AllOld: every message that existed, flags only.
	byID, _, _ = listAll(t, c, inbox, connector.ListOptions{Since: l6.Cursor, AllOld: true})
	if len(byID) != 25-2+3 {
		t.Fatalf("AllOld listed %d, want %d", len(byID), 25-2+3)
	}
	for _, m := range byID {
		if m.Change != connector.ChangeFlags {
			t.Fatalf("AllOld: %+v", m)
		}
	}

	// The tokens expire (410): a full listing with Reset, before anything
	// else was handed out.
	e.srv.ExpireDeltaTokens(alice)
	byID, _, l7 := listAll(t, c, inbox, connector.ListOptions{Since: l6.Cursor, Changes: true})
	if !l7.Reset || len(byID) != 25-2+3 {
		t.Fatalf("after 410: reset %v, %d messages", l7.Reset, len(byID))
	}
	for _, m := range byID {
		if m.Change != connector.ChangeNew {
			t.Fatalf("after reset: %+v", m)
		}
	}
	byID, _, l8 := listAll(t, c, inbox, connector.ListOptions{Since: l7.Cursor, Changes: true})
	if len(byID) != 0 || l8.Reset {
		t.Fatalf("after the reset's cursor: %d, reset %v", len(byID), l8.Reset)
	}

	// Another folder's cursor or a damaged one is a reset, not an error.
	archive := folderByPath(t, c, "Archive")
	if _, _, l := listAll(t, c, archive, connector.ListOptions{Since: l8.Cursor}); !l.Reset {
		t.Error("another folder's cursor was accepted")
	}
	if _, _, l := listAll(t, c, inbox, connector.ListOptions{Since: "graph1:{broken"}); !l.Reset {
		t.Error("a damaged cursor was accepted")
	}
}

// A cursor whose links point elsewhere is never followed: the token
// would go with it.
func TestCursorLinksStayOnTheServiceRoot(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: msg(1, "")})
	c := e.open(t, connector.RoleSource, nil)
	inbox := folderByPath(t, c, "INBOX")
	k := cursor{Folder: inbox.Name, Created: "https://evil.example/v1.0/x", Updated: "https://evil.example/u", Deleted: "https://evil.example/d"}
	byID, _, l := listAll(t, c, inbox, connector.ListOptions{Since: k.encode(), Changes: true})
	if !l.Reset || len(byID) != 1 {
		t.Fatalf("foreign links: reset %v, %d messages", l.Reset, len(byID))
	}
}

// A token that expires between pages, after messages were handed out,
// fails the listing (transient) instead of listing them twice.
func TestDeltaExpiringMidListing(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 15 {
		e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: msg(i, "")})
	}
	c := e.open(t, connector.RoleSource, nil)
	inbox := folderByPath(t, c, "INBOX")
	_, _, l1 := listAll(t, c, inbox, connector.ListOptions{})
	for i := range 15 {
		e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: msg(50+i, "")})
	}
	pages := 0
	_, err := c.List(context.Background(), inbox, connector.ListOptions{Since: l1.Cursor, Batch: 10}, func(ms []connector.Message) error {
		pages++
		e.srv.ExpireDeltaTokens(alice) // the next page's skip token is gone
		return nil
	})
	if connector.KindOf(err) != connector.KindTransient || pages != 1 {
		t.Fatalf("pages %d, err %v (kind %v)", pages, err, connector.KindOf(err))
	}
	// The retry from the same cursor is a clean full listing.
	byID, _, l := listAll(t, c, inbox, connector.ListOptions{Since: l1.Cursor})
	if !l.Reset || len(byID) != 30 {
		t.Fatalf("retry: reset %v, %d", l.Reset, len(byID))
	}
}

// StrictSince: an expired delta token (410 SyncStateNotFound) is an
// ErrCursorInvalid before anything is delivered, never a full listing
// the engine would mistake for new mail; NoMessages gives a cursor that
// lists exactly what arrives after it, without describing (peeking at)
// any message.
func TestStrictSinceAndNoMessages(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 3 {
		e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: msg(i, "")})
	}
	c := e.open(t, connector.RoleSource, nil)
	inbox := folderByPath(t, c, "INBOX")

	before := e.srv.RequestCount(graphserver.RouteGetMIME)
	var got int
	l, err := c.List(context.Background(), inbox, connector.ListOptions{NoMessages: true}, func(ms []connector.Message) error {
		got += len(ms)
		return nil
	})
	if err != nil || got != 0 || l.Cursor == "" {
		t.Fatalf("NoMessages: %d delivered, cursor %q, %v", got, l.Cursor, err)
	}
	if n := e.srv.RequestCount(graphserver.RouteGetMIME); n != before {
		t.Errorf("NoMessages read %d message bodies", n-before)
	}
	fresh := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: msg(50, "")})
	byID, _, _ := listAll(t, c, inbox, connector.ListOptions{Since: l.Cursor, StrictSince: true})
	if len(byID) != 1 || byID[connector.ID(fresh)].Change != connector.ChangeNew {
		t.Fatalf("since the NoMessages cursor: %v, want only %s", byID, fresh)
	}

	e.srv.ExpireDeltaTokens(alice)
	got = 0
	_, err = c.List(context.Background(), inbox, connector.ListOptions{Since: l.Cursor, StrictSince: true, Changes: true}, func(ms []connector.Message) error {
		got += len(ms)
		return nil
	})
	if !errors.Is(err, connector.ErrCursorInvalid) || got != 0 {
		t.Fatalf("expired token with StrictSince: %d delivered, %v; want ErrCursorInvalid and nothing", got, err)
	}
	// Without StrictSince the same cursor gives a full listing with Reset.
	byID, _, l2 := listAll(t, c, inbox, connector.ListOptions{Since: l.Cursor})
	if !l2.Reset || len(byID) != 4 {
		t.Fatalf("expired token: reset %v, %d messages; want a full listing of 4", l2.Reset, len(byID))
	}
	// A cursor of another folder is refused the same way.
	_, err = c.List(context.Background(), folderByPath(t, c, "Drafts"), connector.ListOptions{Since: l2.Cursor, StrictSince: true}, func([]connector.Message) error { return nil })
	if !errors.Is(err, connector.ErrCursorInvalid) {
		t.Fatalf("another folder's cursor: %v", err)
	}
}
