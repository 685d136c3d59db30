package config

import (
	"encoding"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment variable that overrides a config key.
const EnvPrefix = "GATEHOUSE_"

// ConfigEnv names the config file when no --config is given; it is not a config key.
const ConfigEnv = "GATEHOUSE_CONFIG"

// SearchPath is where a command looks for its config file when neither --config nor
// GATEHOUSE_CONFIG names one, in order; with none found the built-in defaults apply.
var SearchPath = []string{"gatehouse.yaml", "/etc/gatehouse/gatehouse.yaml"}

// Nearest returns the entry of known closest to got, or "" when none is close.
func Nearest(got string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(got, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// Load reads the YAML file at path (none when path is ""), applies the GATEHOUSE_*
// variables in env over it, and validates the result. Every problem found is reported,
// each naming its key, variable or line.
func Load(path string, env []string) (Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return Default(), fmt.Errorf("config: reading %s: %w", path, err)
		}
	}
	return load(path, data, env)
}

// load is Load on file contents already read (data is ignored when path is "").
func load(path string, data []byte, env []string) (Config, error) {
	cfg := Default()
	if path != "" {
		if err := decodeYAML(data, &cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, env); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	derivePublicURL(&cfg)
	if err := cfg.Validate(); err != nil {
		where := "config"
		if path != "" {
			where = "config " + path
		}
		return cfg, fmt.Errorf("%s: %w", where, indent(err))
	}
	return cfg, nil
}

// derivePublicURL follows server.address when server.public_url was left at its
// default: with address ":8080" the printed setup link and the login redirects must
// say port 8080, not 9000.
func derivePublicURL(c *Config) {
	d := Default()
	if c.Server.PublicURL != d.Server.PublicURL || c.Server.Address == d.Server.Address {
		return
	}
	host, port, err := net.SplitHostPort(c.Server.Address)
	if err != nil || port == "" {
		return
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	c.Server.PublicURL = "http://" + net.JoinHostPort(host, port)
}

// indent puts each joined error on its own line under the heading.
func indent(err error) error {
	lines := strings.Split(err.Error(), "\n")
	if len(lines) == 1 {
		return err
	}
	return errors.New("\n  " + strings.Join(lines, "\n  "))
}

func decodeYAML(data []byte, cfg *Config) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return err
	}
	if len(root.Content) == 0 { // an empty file is the defaults
		return nil
	}
	var files []fileRef
	if err := checkKeys(root.Content[0], reflect.TypeFor[Config](), "", nil, &files); err != nil {
		return err
	}
	if err := root.Content[0].Decode(cfg); err != nil {
		return err
	}
	for _, f := range files {
		v, err := readSecretFile(f.path)
		if err != nil {
			return fmt.Errorf("%s_file: %w", f.key, err)
		}
		at(reflect.ValueOf(cfg).Elem(), f.index).SetString(v)
	}
	return nil
}

// fileRef is a "KEY_file" entry: the secret key it fills, where that key sits in the
// model, and the file to read.
type fileRef struct {
	key   string
	index []int // struct field indexes; -(i+1) steps into element i of a list
	path  string
}

// at follows a fileRef index from v.
func at(v reflect.Value, index []int) reflect.Value {
	for _, i := range index {
		if i < 0 {
			v = v.Index(-i - 1)
		} else {
			v = v.Field(i)
		}
	}
	return v
}

var durationType = reflect.TypeFor[Duration]()

// checkKeys walks the YAML tree beside the Go model so that an unknown key is reported
// with its full path, its line, and the key that was probably meant. It takes
// "KEY_file" entries for secret keys out of the tree and records them in files.
func checkKeys(n *yaml.Node, t reflect.Type, path string, index []int, files *[]fileRef) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch {
	case t.Kind() == reflect.Struct && t != durationType:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("line %d: %s must be a mapping of keys", n.Line, orRoot(path))
		}
		var errs []error
		kept := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := join(path, k.Value)
			if f, ok := fieldByTag(t, k.Value); ok {
				errs = append(errs, checkKeys(v, f.Type, key, append(slices.Clone(index), f.Index...), files))
				kept = append(kept, k, v)
				continue
			}
			if base, ok := strings.CutSuffix(k.Value, "_file"); ok {
				if f, ok := fieldByTag(t, base); ok && f.Tag.Get("secret") == "true" {
					*files = append(*files, fileRef{key: join(path, base), index: append(slices.Clone(index), f.Index...), path: v.Value})
					continue
				}
			}
			errs = append(errs, fmt.Errorf("line %d: unknown key %q%s", k.Line, key, suggest(k.Value, tagsOf(t))))
		}
		n.Content = kept
		return errors.Join(errs...)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		if n.Kind != yaml.SequenceNode {
			if n.Tag == "!!null" {
				return nil
			}
			return fmt.Errorf("line %d: %s must be a list", n.Line, path)
		}
		var errs []error
		for i, item := range n.Content {
			errs = append(errs, checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), append(slices.Clone(index), -(i+1)), files))
		}
		return errors.Join(errs...)
	}
	return checkValue(n, t, path)
}

// checkValue decodes one leaf on its own, so that a value of the wrong type is
// reported with its key and line, not as the decoder's message about Go types.
func checkValue(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return nil
	}
	want := map[reflect.Kind]string{reflect.Bool: "true or false", reflect.Int: "a whole number", reflect.Slice: "a list",
		reflect.String: "text", reflect.Map: "a mapping of keys"}[t.Kind()]
	var te *yaml.TypeError
	switch {
	case t == durationType && !errors.As(err, &te):
		return fmt.Errorf("line %d: %s: %v", n.Line, path, err) // Duration says what it wants
	case want != "":
		return fmt.Errorf("line %d: %s must be %s, not %q", n.Line, path, want, n.Value)
	}
	return fmt.Errorf("line %d: %s: %v", n.Line, path, err)
}

func orRoot(path string) string {
	if path == "" {
		return "the config file"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("yaml") == tag {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tagsOf(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		out = append(out, t.Field(i).Tag.Get("yaml"))
	}
	return out
}

// suggest names the known key closest to a misspelt one, and lists them all.
func suggest(got string, known []string) string {
	if best := Nearest(got, known); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return fmt.Sprintf(" (known keys here: %s)", strings.Join(known, ", "))
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// Leaf is one scalar config key that an environment variable can set.
type Leaf struct {
	Key    string // server.public_url
	Env    string // GATEHOUSE_SERVER_PUBLIC_URL
	Doc    string
	Secret bool // also readable from Env + "_FILE"
	index  []int
}

// Leaves lists the environment-settable keys in model order.
func Leaves() []Leaf {
	var out []Leaf
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		sec := ct.Field(i)
		if sec.Type.Kind() != reflect.Struct {
			continue
		}
		out = appendLeaves(out, sec.Type, sec.Tag.Get("yaml"), []int{i})
	}
	return out
}

// appendLeaves adds the fields of the section t (at key, index) to out, and those of
// its nested sections (access.kubernetes) as GATEHOUSE_ACCESS_KUBERNETES_ENABLED.
func appendLeaves(out []Leaf, t reflect.Type, key string, index []int) []Leaf {
	for j := range t.NumField() {
		f := t.Field(j)
		k, at := key+"."+f.Tag.Get("yaml"), append(slices.Clone(index), j)
		switch {
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			continue // lists of objects (access.rules) only come from the file
		case f.Type.Kind() == reflect.Struct && f.Type != durationType:
			out = appendLeaves(out, f.Type, k, at)
			continue
		}
		out = append(out, Leaf{
			Key: k, Env: EnvPrefix + strings.ToUpper(strings.ReplaceAll(k, ".", "_")),
			Doc: f.Tag.Get("doc"), Secret: f.Tag.Get("secret") == "true", index: at,
		})
	}
	return out
}

// kubernetesServiceEnv matches the variables Kubernetes injects for a Service named
// "gatehouse" (GATEHOUSE_PORT, GATEHOUSE_SERVICE_HOST, …): they are not typos.
func kubernetesServiceEnv(name string) bool {
	return name == "GATEHOUSE_PORT" || strings.HasPrefix(name, "GATEHOUSE_PORT_") || strings.HasPrefix(name, "GATEHOUSE_SERVICE_")
}

func applyEnv(cfg *Config, env []string) error {
	byEnv := map[string]Leaf{}
	var names []string
	for _, l := range Leaves() {
		byEnv[l.Env] = l
		names = append(names, l.Env)
	}
	set := map[string]string{}
	var errs []error
	for _, kv := range env {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || kubernetesServiceEnv(name) || name == ConfigEnv {
			continue
		}
		leaf, ok := byEnv[name]
		if !ok {
			if base, isFile := strings.CutSuffix(name, "_FILE"); isFile {
				if leaf, ok = byEnv[base]; ok {
					if _, both := set[leaf.Env]; both {
						errs = append(errs, fmt.Errorf("both %s and %s are set: use one", base, name))
						continue
					}
					v, err := readSecretFile(val)
					if err != nil {
						errs = append(errs, fmt.Errorf("%s: %w", name, err))
						continue
					}
					set[leaf.Env], val = name, v
				}
			}
		} else if by, both := set[name]; both {
			errs = append(errs, fmt.Errorf("both %s and %s are set: use one", name, by))
			continue
		} else {
			set[name] = name
		}
		if !ok {
			errs = append(errs, fmt.Errorf("unknown environment variable %s%s", name, suggest(name, names)))
			continue
		}
		field := reflect.ValueOf(cfg).Elem().FieldByIndex(leaf.index)
		if err := setFromString(field, val); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", name, leaf.Key, err))
		}
	}
	return errors.Join(errs...)
}

func setFromString(v reflect.Value, s string) error {
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(s))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		v.SetInt(int64(n))
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case reflect.Slice:
		var items []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading secret file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
