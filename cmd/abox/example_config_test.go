package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

var updateExample = flag.Bool("update-example", false, "rewrite docs/abox.example.toml from the defaults and the README's table")

const exampleConfig = "../../docs/abox.example.toml"

// TestExampleConfig: docs/abox.example.toml lists every config key with
// its default (commented out) and the README's description of it, and
// uncommented it loads as exactly the defaults. Regenerate with
// go test ./cmd/abox -run TestExampleConfig -update-example.
func TestExampleConfig(t *testing.T) {
	want := generateExample(t)
	if *updateExample {
		if err := os.WriteFile(exampleConfig, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with the defaults or the README: run go test ./cmd/abox -run TestExampleConfig -update-example", exampleConfig)
	}
	// Uncommented, it is the defaults (hostname aside: the machine's).
	var active []string
	for _, l := range strings.Split(string(got), "\n") {
		if strings.HasPrefix(l, "# ") && strings.Contains(l, " = ") && !strings.HasPrefix(l, "# hostname = ") {
			active = append(active, strings.TrimPrefix(l, "# "))
		}
	}
	cfg := defaultConfig()
	dec := toml.NewDecoder(strings.NewReader(strings.Join(active, "\n")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("the example, uncommented, does not load: %v", err)
	}
	// (Compared as printed: an empty list and none are the same here.)
	if fmt.Sprintf("%+v", cfg) != fmt.Sprintf("%+v", defaultConfig()) {
		t.Errorf("the example's values are not the defaults:\n got %+v\nwant %+v", cfg, defaultConfig())
	}
}

// generateExample writes every key of Config, in order, as a commented
// line with its default value, under the README's description of it.
func generateExample(t *testing.T) []byte {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	desc := map[string]string{}
	row := regexp.MustCompile("^\\| (`[a-z0-9-]+`(?:, `[a-z0-9-]+`)*) \\| ([^|]*) \\| (.*) \\|$")
	tick := regexp.MustCompile("`([a-z0-9-]+)`")
	for _, l := range strings.Split(string(readme), "\n") {
		m := row.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		for _, k := range tick.FindAllStringSubmatch(m[1], -1) {
			desc[k[1]] = strings.ReplaceAll(m[3], "`", "")
		}
	}
	var b strings.Builder
	b.WriteString("# abox.toml: every setting with its default (generated from the defaults and\n")
	b.WriteString("# the README's configuration table by TestExampleConfig; do not edit by hand).\n")
	b.WriteString("# Put the file in the data directory (DIR/abox.toml) or name it with --config;\n")
	b.WriteString("# uncomment what you change. Every key is also a flag of abox serve.\n")
	cfg := defaultConfig()
	v, ty := reflect.ValueOf(cfg), reflect.TypeOf(cfg)
	for i := range ty.NumField() {
		key := ty.Field(i).Tag.Get("toml")
		if key == "" || key == "data" {
			continue
		}
		d, ok := desc[key]
		if !ok {
			t.Errorf("the README's configuration table does not describe %s", key)
		}
		val, err := toml.Marshal(map[string]any{key: v.Field(i).Interface()})
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("\n")
		for _, line := range wrap(d, 76) {
			b.WriteString("# " + line + "\n")
		}
		line := strings.TrimSpace(string(val))
		if key == "hostname" {
			line = `hostname = "mail.example.kz"  # default: the machine's name`
		}
		b.WriteString("# " + line + "\n")
	}
	return []byte(b.String())
}

// wrap breaks s into lines of at most n bytes at spaces.
func wrap(s string, n int) []string {
	var out []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > n {
			out = append(out, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		out = append(out, line)
	}
	return out
}
