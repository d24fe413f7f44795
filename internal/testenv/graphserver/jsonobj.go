package graphserver

import (
	"bytes"
	"encoding/json"
	"strings"
)

// obj is a JSON object that keeps its keys in insertion order, so responses
// read like the documentation's examples (@odata annotations first).
type obj []kv

type kv struct {
	k string
	v any
}

func (o *obj) set(k string, v any) { *o = append(*o, kv{k, v}) }

func (o obj) get(k string) (any, bool) {
	for _, p := range o {
		if p.k == k {
			return p.v, true
		}
	}
	return nil, false
}

// pick keeps annotations, id and the selected properties, in o's order.
func (o obj) pick(sel []string) obj {
	if sel == nil {
		return o
	}
	keep := map[string]bool{"id": true}
	for _, s := range sel {
		keep[s] = true
	}
	var out obj
	for _, p := range o {
		if strings.HasPrefix(p.k, "@") || keep[p.k] {
			out = append(out, p)
		}
	}
	return out
}

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(p.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(p.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
