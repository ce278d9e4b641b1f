package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// OptionSet is a subcommand's flags. Every flag may also come from an environment variable; a flag on the command
// line wins over the environment, which wins over the default. Values are read once, here: engines see only the
// resulting config.
type OptionSet struct {
	name    string
	summary string
	usage   string
	fs      *flag.FlagSet
	opts    []*option
	getenv  func(string) string
	errs    []error
	checks  []func() error
}

type option struct {
	flag, env, help, def string
}

// NewOptionSet starts the flags of command name: usage follows the name in --help, summary says what it does, and
// getenv supplies each option's environment variable.
func NewOptionSet(name, usage, summary string, getenv func(string) string) *OptionSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &OptionSet{name: name, usage: usage, summary: summary, fs: fs, getenv: getenv}
}

func (s *OptionSet) register(name, env, def, help string) string {
	s.opts = append(s.opts, &option{flag: name, env: env, help: help, def: def})
	if env != "" {
		if v := s.getenv(env); v != "" {
			return v
		}
	}
	return def
}

// String declares a text option: --name, or the environment variable env, or def.
func (s *OptionSet) String(p *string, name, env, def, help string) {
	s.fs.StringVar(p, name, s.register(name, env, def, help), help)
}

// Bool declares a true/false option, as String does.
func (s *OptionSet) Bool(p *bool, name, env string, def bool, help string) {
	raw := s.register(name, env, strconv.FormatBool(def), help)
	v, err := strconv.ParseBool(raw)
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("%s=%q: not a boolean (use true or false)", env, raw))
	}
	s.fs.BoolVar(p, name, v, help)
}

// Duration declares a duration option (30s, 5m), as String does.
func (s *OptionSet) Duration(p *time.Duration, name, env string, def time.Duration, help string) {
	raw := s.register(name, env, def.String(), help)
	v, err := time.ParseDuration(raw)
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("%s=%q: not a duration (e.g. 30s, 5m)", env, raw))
		v = def // so that only the real problem is reported, not a knock-on "must be positive"
	}
	s.fs.DurationVar(p, name, v, help)
}

// Int declares a whole-number option, as String does.
func (s *OptionSet) Int(p *int, name, env string, def int, help string) {
	raw := s.register(name, env, strconv.Itoa(def), help)
	v, err := strconv.Atoi(raw)
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("%s=%q: not a whole number", env, raw))
		v = def
	}
	s.fs.IntVar(p, name, v, help)
}

// Check registers a validation that parse runs once the values are final. Options register the checks of their
// own values where they are declared, so a command validates exactly the options it has.
func (s *OptionSet) Check(f func() error) { s.checks = append(s.checks, f) }

// errHelp is returned by parse when --help was asked for; the help text has been written.
var errHelp = errors.New("help requested")

// Parse parses args, runs the checks and reports every problem at once: bad environment values, bad flags and
// invalid values together.
func (s *OptionSet) Parse(args []string, out io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			s.help(out)
			return errHelp
		}
	}
	if unknown, known := s.unknownFlags(args); len(unknown) > 0 {
		// The flag package stops at the first flag it does not know; the rest are parsed without them, so that
		// every unknown flag and every bad value is reported in one go.
		s.errs = append(s.errs, fmt.Errorf("unknown flag%s %s", plural(len(unknown)), strings.Join(unknown, ", ")))
		args = known
	}
	if err := s.fs.Parse(args); err != nil {
		s.errs = append(s.errs, err)
	}
	for _, check := range s.checks {
		s.errs = append(s.errs, check())
	}
	return errors.Join(s.errs...)
}

// unknownFlags returns the flags in args this set does not define, as typed but without a value (which may be a
// secret), and args without them. It reads args as the flag package does: flags until the first argument that is
// not one, or "--".
func (s *OptionSet) unknownFlags(args []string) (unknown, known []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			return unknown, append(known, args[i:]...)
		}
		typed, defined, span := s.flagArg(args, i)
		if defined {
			known = append(known, args[i:i+span]...)
		} else {
			unknown = append(unknown, typed)
		}
		i += span - 1
	}
	return unknown, known
}

// interspersed splits args into flags (with their values) and the positional arguments among them, for a command
// whose arguments may come before, between or after its flags (`viaduct reimport 3 --yes 4`), which the flag
// package alone would stop reading at the first argument. Everything after "--" is positional. Unknown flags stay
// with the flags, for parse to report.
func (s *OptionSet) interspersed(args []string) (flags, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(positional, args[i+1:]...)
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		_, _, span := s.flagArg(args, i)
		flags = append(flags, args[i:i+span]...)
		i += span - 1
	}
	return flags, positional
}

// flagArg reads args[i], a flag: its dashes and name as typed (without "=value"), whether this set defines it, and
// how many arguments it spans: 2 when its value is the next one. A flag this set does not define is taken to have
// a value when the next argument is not a flag: the likelier mistake (a misspelt --database-url URL), and the
// reading that keeps that value from being taken for a positional argument.
func (s *OptionSet) flagArg(args []string, i int) (typed string, defined bool, span int) {
	a := args[i]
	bare := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
	name, _, hasValue := strings.Cut(bare, "=")
	typed = a[:len(a)-len(bare)] + name
	f := s.fs.Lookup(name)
	if hasValue || i+1 == len(args) {
		return typed, f != nil, 1
	}
	if f == nil {
		if strings.HasPrefix(args[i+1], "-") {
			return typed, false, 1
		}
		return typed, false, 2
	}
	if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
		return typed, true, 1
	}
	return typed, true, 2
}

// plural is "s" unless n is 1.
func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func (s *OptionSet) help(out io.Writer) {
	fmt.Fprintf(out, "Usage: viaduct %s %s\n\n%s\n\n", s.name, s.usage, s.summary)
	if len(s.opts) == 0 {
		return
	}
	fmt.Fprintln(out, "Flags (each may also be set by the environment variable shown):")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	for _, o := range s.opts {
		env := o.env
		if env == "" {
			env = "-"
		}
		def := o.def
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(tw, "  --%s\t%s\t%s (default %s)\n", o.flag, env, strings.TrimSuffix(o.help, "."), def)
	}
	_ = tw.Flush()
}
