package config

import (
	"fmt"
	"reflect"
	"strings"
)

// Reference renders the config reference as a Markdown table, from the model itself:
// every key, its environment variable, its default and what it does. The README embeds
// this output, and a test fails when the two differ.
func Reference() string {
	var b strings.Builder
	b.WriteString("| key | environment variable | default | meaning |\n|---|---|---|---|\n")
	def := reflect.ValueOf(Default())
	byKey := map[string]Leaf{}
	for _, l := range Leaves() {
		byKey[l.Key] = l
	}
	var walk func(t reflect.Type, v reflect.Value, prefix string)
	walk = func(t reflect.Type, v reflect.Value, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			key := join(prefix, f.Tag.Get("yaml"))
			var fv reflect.Value
			if v.IsValid() {
				fv = v.Field(i)
			}
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != durationType:
				walk(f.Type, fv, key)
				continue
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				fmt.Fprintf(&b, "| `%s` | — | `[]` | %s |\n", key, cell(f.Tag.Get("doc")))
				walk(f.Type.Elem(), reflect.Value{}, key+"[]")
				continue
			}
			env := "—"
			if l, ok := byKey[key]; ok {
				env = "`" + l.Env + "`"
				if l.Secret {
					env += " or `" + l.Env + "_FILE`"
				}
			}
			doc := f.Tag.Get("doc")
			if f.Tag.Get("secret") == "true" {
				doc += fmt.Sprintf(" In the file, `%s_file: PATH` reads it from a file.", f.Tag.Get("yaml"))
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", key, env, defaultText(fv), cell(doc))
		}
	}
	walk(reflect.TypeFor[Config](), def, "")
	return b.String()
}

func defaultText(v reflect.Value) string {
	if !v.IsValid() {
		return ""
	}
	if s, ok := v.Interface().(fmt.Stringer); ok {
		return "`" + s.String() + "`"
	}
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return "(empty)"
		}
		return "`" + v.String() + "`"
	case reflect.Slice:
		items := make([]string, v.Len())
		for i := range items {
			items[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return "`[" + strings.Join(items, ", ") + "]`"
	case reflect.Bool:
		return fmt.Sprintf("`%v`", v.Bool())
	default:
		return fmt.Sprintf("`%v`", v.Interface())
	}
}

// cell escapes text for a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
