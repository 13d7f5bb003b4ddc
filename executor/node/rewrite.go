package node

import (
	"go.starlark.net/syntax"
)

// The interpreter of go.starlark.net has no allocation hook: operators,
// slices and the methods of its built-in types build values of any size
// in one step. So before compiling, rewrite routes every expression that
// can build a value larger than its operands through a hidden builtin of
// its own (chargeBuiltins) that estimates the size of the result, charges
// it to the attempt's memory budget and only then builds it:
//
//	x + y, x * y, x % y, x << y, x | y, x - y, x & y, x ^ y  →  $op(x, y)
//	x += y (and the other augmented assignments)       →  x = $iop(x, y)
//	a[k] += y, a.f += y                                →  $augindex(a, k, "+", y), $augattr(a, "f", "+", y)
//	x[lo:hi:step]                                      →  $slice(x, lo, hi, step)
//	x.join (and the other size-changing method names)  →  $attr(x, "join")
//	f(*xs, **kw)                                       →  f(*$spread(xs), **$spread(kw))
//	[e for v in xs ...], {k: v for v in xs ...}        →  [e for v in $each(xs, 16) ...]
//
// Names starting with "$" cannot be written in Starlark, so node code can
// neither call nor shadow the hidden builtins. Each call takes the
// position of the operator it replaces, so errors and tracebacks still
// name the user's line:col, and the builtins return the interpreter's own
// error messages for ordinary errors. Method values are charged when
// they are called, however they were obtained (aliased, passed to
// parallel.map or a lambda, fetched with getattr), because $attr and
// getattr return a charging wrapper of the bound method.

// chargedMethods are the method names of str, bytes, list, dict and set
// whose result (or growth of the receiver) can exceed the size of their
// arguments; x.name for these names becomes $attr(x, "name").
var chargedMethods = map[string]bool{
	"join": true, "replace": true, "format": true, "split": true, "rsplit": true,
	"splitlines": true, "upper": true, "lower": true, "title": true, "capitalize": true,
	"extend": true, "update": true, "items": true, "keys": true, "values": true,
	"union": true, "difference": true, "intersection": true, "symmetric_difference": true,
}

// binaryBuiltins maps the operators that may build a larger value to
// their hidden builtin.
var binaryBuiltins = map[syntax.Token]string{
	syntax.PLUS:       "$add",
	syntax.STAR:       "$mul",
	syntax.PERCENT:    "$mod",
	syntax.LTLT:       "$lsh",
	syntax.PIPE:       "$or",
	syntax.MINUS:      "$sub",
	syntax.AMP:        "$and",
	syntax.CIRCUMFLEX: "$xor",
}

// augmentedOps maps an augmented assignment to its binary operator.
var augmentedOps = map[syntax.Token]syntax.Token{
	syntax.PLUS_EQ:       syntax.PLUS,
	syntax.STAR_EQ:       syntax.STAR,
	syntax.PERCENT_EQ:    syntax.PERCENT,
	syntax.LTLT_EQ:       syntax.LTLT,
	syntax.PIPE_EQ:       syntax.PIPE,
	syntax.MINUS_EQ:      syntax.MINUS,
	syntax.AMP_EQ:        syntax.AMP,
	syntax.CIRCUMFLEX_EQ: syntax.CIRCUMFLEX,
}

// rewriteFile rewrites the parsed, not yet resolved file f in place.
func rewriteFile(f *syntax.File) {
	f.Stmts = rewriteStmts(f.Stmts)
}

func rewriteStmts(stmts []syntax.Stmt) []syntax.Stmt {
	for i, s := range stmts {
		stmts[i] = rewriteStmt(s)
	}
	return stmts
}

func rewriteStmt(s syntax.Stmt) syntax.Stmt {
	switch s := s.(type) {
	case *syntax.AssignStmt:
		if s.Op == syntax.EQ {
			s.LHS = rewriteTarget(s.LHS)
			s.RHS = rewriteExpr(s.RHS)
			return s
		}
		op, ok := augmentedOps[s.Op]
		if !ok {
			s.LHS = rewriteTarget(s.LHS)
			s.RHS = rewriteExpr(s.RHS)
			return s
		}
		rhs := rewriteExpr(s.RHS)
		for {
			p, ok := s.LHS.(*syntax.ParenExpr)
			if !ok {
				break
			}
			s.LHS = p.X // (x) += y is x += y
		}
		switch lhs := s.LHS.(type) {
		case *syntax.Ident:
			// x op= y  →  x = $iop(x, y): reading an identifier has no
			// side effect, and $iadd/$ior keep the in-place semantics of
			// += on lists and |= on dicts.
			name := "$i" + binaryBuiltins[op][1:]
			read := &syntax.Ident{NamePos: lhs.NamePos, Name: lhs.Name}
			return &syntax.AssignStmt{OpPos: s.OpPos, Op: syntax.EQ, LHS: lhs,
				RHS: hiddenCall(name, s.OpPos, read, rhs)}
		case *syntax.IndexExpr:
			// At the bracket, where the interpreter reports the
			// errors of reading and storing the element.
			call := hiddenCall("$augindex", lhs.Lbrack, rewriteExpr(lhs.X), rewriteExpr(lhs.Y), opLiteral(op, s.OpPos), rhs)
			return &syntax.ExprStmt{X: call}
		case *syntax.DotExpr:
			name := &syntax.Literal{Token: syntax.STRING, TokenPos: lhs.NamePos, Raw: `"` + lhs.Name.Name + `"`, Value: lhs.Name.Name}
			call := hiddenCall("$augattr", lhs.Dot, rewriteExpr(lhs.X), name, opLiteral(op, s.OpPos), rhs)
			return &syntax.ExprStmt{X: call}
		}
		s.RHS = rhs
		return s
	case *syntax.DefStmt:
		rewriteParams(s.Params)
		s.Body = rewriteStmts(s.Body)
	case *syntax.ExprStmt:
		s.X = rewriteExpr(s.X)
	case *syntax.ForStmt:
		s.Vars = rewriteTarget(s.Vars)
		s.X = rewriteExpr(s.X)
		s.Body = rewriteStmts(s.Body)
	case *syntax.WhileStmt:
		s.Cond = rewriteExpr(s.Cond)
		s.Body = rewriteStmts(s.Body)
	case *syntax.IfStmt:
		s.Cond = rewriteExpr(s.Cond)
		s.True = rewriteStmts(s.True)
		s.False = rewriteStmts(s.False)
	case *syntax.ReturnStmt:
		if s.Result != nil {
			s.Result = rewriteExpr(s.Result)
		}
	}
	return s
}

// rewriteTarget rewrites the operands inside an assignment target (a[i()]
// = v) but never the target itself.
func rewriteTarget(e syntax.Expr) syntax.Expr {
	switch e := e.(type) {
	case *syntax.IndexExpr:
		e.X = rewriteExpr(e.X)
		e.Y = rewriteExpr(e.Y)
	case *syntax.DotExpr:
		e.X = rewriteExpr(e.X)
	case *syntax.TupleExpr:
		for i, x := range e.List {
			e.List[i] = rewriteTarget(x)
		}
	case *syntax.ListExpr:
		for i, x := range e.List {
			e.List[i] = rewriteTarget(x)
		}
	case *syntax.ParenExpr:
		e.X = rewriteTarget(e.X)
	}
	return e
}

// rewriteParams rewrites the default values of parameters.
func rewriteParams(params []syntax.Expr) {
	for _, p := range params {
		if b, ok := p.(*syntax.BinaryExpr); ok && b.Op == syntax.EQ {
			b.Y = rewriteExpr(b.Y)
		}
	}
}

func rewriteExprs(list []syntax.Expr) {
	for i, x := range list {
		list[i] = rewriteExpr(x)
	}
}

func rewriteExpr(e syntax.Expr) syntax.Expr {
	switch e := e.(type) {
	case *syntax.BinaryExpr:
		e.X = rewriteExpr(e.X)
		e.Y = rewriteExpr(e.Y)
		name, ok := binaryBuiltins[e.Op]
		if !ok || exemptBinary(e) {
			return e
		}
		return hiddenCall(name, e.OpPos, e.X, e.Y)
	case *syntax.UnaryExpr:
		if e.X != nil {
			e.X = rewriteExpr(e.X)
		}
	case *syntax.CallExpr:
		e.Fn = rewriteExpr(e.Fn)
		for i, a := range e.Args {
			switch a := a.(type) {
			case *syntax.BinaryExpr: // name=value
				if a.Op == syntax.EQ {
					a.Y = rewriteExpr(a.Y)
					continue
				}
			case *syntax.UnaryExpr: // *args, **kwargs
				if a.Op == syntax.STAR || a.Op == syntax.STARSTAR {
					a.X = hiddenCall("$spread", a.OpPos, rewriteExpr(a.X))
					continue
				}
			}
			e.Args[i] = rewriteExpr(a)
		}
	case *syntax.DotExpr:
		e.X = rewriteExpr(e.X)
		if chargedMethods[e.Name.Name] {
			name := &syntax.Literal{Token: syntax.STRING, TokenPos: e.NamePos, Raw: `"` + e.Name.Name + `"`, Value: e.Name.Name}
			return hiddenCall("$attr", e.Dot, e.X, name)
		}
	case *syntax.SliceExpr:
		x := rewriteExpr(e.X)
		none := func(p syntax.Expr) syntax.Expr {
			if p == nil {
				return &syntax.Ident{NamePos: e.Lbrack, Name: "None"}
			}
			return rewriteExpr(p)
		}
		return hiddenCall("$slice", e.Lbrack, x, none(e.Lo), none(e.Hi), none(e.Step))
	case *syntax.IndexExpr:
		e.X = rewriteExpr(e.X)
		e.Y = rewriteExpr(e.Y)
	case *syntax.Comprehension:
		if e.Curly {
			if _, ok := e.Body.(*syntax.DictEntry); !ok {
				e.Body = rewriteExpr(e.Body) // set comprehension
			}
		}
		if d, ok := e.Body.(*syntax.DictEntry); ok {
			d.Key = rewriteExpr(d.Key)
			d.Value = rewriteExpr(d.Value)
		} else if !e.Curly {
			e.Body = rewriteExpr(e.Body)
		}
		per := int64(sliceSlot)
		if e.Curly {
			per = hashEntry
		}
		for _, c := range e.Clauses {
			switch c := c.(type) {
			case *syntax.ForClause:
				c.Vars = rewriteTarget(c.Vars)
				c.X = hiddenCall("$each", c.For, rewriteExpr(c.X), intLiteral(per, c.For))
			case *syntax.IfClause:
				c.Cond = rewriteExpr(c.Cond)
			}
		}
	case *syntax.CondExpr:
		e.Cond = rewriteExpr(e.Cond)
		e.True = rewriteExpr(e.True)
		e.False = rewriteExpr(e.False)
	case *syntax.DictExpr:
		for _, x := range e.List {
			if d, ok := x.(*syntax.DictEntry); ok {
				d.Key = rewriteExpr(d.Key)
				d.Value = rewriteExpr(d.Value)
			}
		}
	case *syntax.ListExpr:
		rewriteExprs(e.List)
	case *syntax.TupleExpr:
		rewriteExprs(e.List)
	case *syntax.ParenExpr:
		e.X = rewriteExpr(e.X)
	case *syntax.LambdaExpr:
		rewriteParams(e.Params)
		e.Body = rewriteExpr(e.Body)
	}
	return e
}

// exemptBinary reports whether the operation cannot build a large value
// whatever its operands: one operand is a number literal and the result is
// then a number or an error (+, -, &, |, ^), a float multiplies, or a
// shift is by a small literal amount.
func exemptBinary(e *syntax.BinaryExpr) bool {
	num := func(x syntax.Expr) (isNum, isFloat bool) {
		if l, ok := x.(*syntax.Literal); ok {
			return l.Token == syntax.INT || l.Token == syntax.FLOAT, l.Token == syntax.FLOAT
		}
		return false, false
	}
	xn, xf := num(e.X)
	yn, yf := num(e.Y)
	// Two literals: the compiler folds "a" + "b"; "-" * 40 is small.
	if lx, ok := e.X.(*syntax.Literal); ok {
		if ly, ok := e.Y.(*syntax.Literal); ok {
			switch e.Op {
			case syntax.PLUS:
				return true
			case syntax.STAR:
				for _, p := range [][2]*syntax.Literal{{lx, ly}, {ly, lx}} {
					s, ok1 := p[0].Value.(string)
					n, ok2 := p[1].Value.(int64)
					if ok1 && ok2 && int64(len(s))*min(max(n, 0), 1<<20) <= 1<<16 {
						return true
					}
				}
			}
		}
	}
	switch e.Op {
	case syntax.STAR:
		return xf || yf || (xn && yn)
	case syntax.LTLT:
		// 1 << 20 builds a number of 20 bits; only a shift by a large
		// or unknown amount can build a huge one.
		if l, ok := e.Y.(*syntax.Literal); ok && l.Token == syntax.INT {
			if v, ok := l.Value.(int64); ok && v <= 1024 {
				return true
			}
		}
		return false
	case syntax.PERCENT:
		// 5 % x is a number or an error; fmt % 5 copies fmt, however
		// long it is, so only a number on the left is exempt.
		return xn
	}
	return xn || yn
}

// hiddenCall returns the call of the hidden builtin name at pos.
func hiddenCall(name string, pos syntax.Position, args ...syntax.Expr) *syntax.CallExpr {
	return &syntax.CallExpr{Fn: &syntax.Ident{NamePos: pos, Name: name}, Lparen: pos, Args: args, Rparen: pos}
}

func opLiteral(op syntax.Token, pos syntax.Position) *syntax.Literal {
	s := op.String()
	return &syntax.Literal{Token: syntax.STRING, TokenPos: pos, Raw: `"` + s + `"`, Value: s}
}

func intLiteral(n int64, pos syntax.Position) *syntax.Literal {
	return &syntax.Literal{Token: syntax.INT, TokenPos: pos, Raw: "0", Value: n}
}
