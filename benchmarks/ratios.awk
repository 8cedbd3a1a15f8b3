# Reads `benchstat -format csv -col /impl` and prints, for every table, each
# column's median against the first column's (the baseline):
#   sec/op:      baseline ÷ column, "how many times faster than the baseline"
#   other units: column ÷ baseline
# B/op and allocs/op are left out: their tables are read as they are.
# A blank cell means the column has no sample for that row.
BEGIN { FS = "," }
/^,/ && $2 != "" && $2 !~ /\// && $2 != "sec/op" && header == "" {
	# First header line: column names, each followed by empty fields.
	header = $0
	n = split($0, f, ",")
	ncols = 0
	for (i = 2; i <= n; i++) if (f[i] != "") { ncols++; name[ncols] = f[i]; pos[ncols] = i }
	next
}
/^,/ && header != "" {
	# Second header line: the unit.
	unit = $2
	if (unit == "B/op" || unit == "allocs/op") { skip = 1; header = ""; next }
	skip = 0
	if (unit == "sec/op") { how = "x faster than " name[1] } else { how = unit " / " name[1] }
	printf "\n%s (%s)\n", unit, how
	printf "%-28s", "row"
	for (c = 2; c <= ncols; c++) printf " %14s", name[c]
	printf "\n"
	header = ""
	next
}
/^[^,]/ && pos[1] && !skip && NF > 2 && $1 != "geomean" {
	printf "%-28s", $1
	base = $(pos[1])
	for (c = 2; c <= ncols; c++) {
		v = $(pos[c])
		if (base == "" || v == "" || base + 0 == 0 || v + 0 == 0) { printf " %14s", "" ; continue }
		r = (unit == "sec/op") ? base / v : v / base
		printf " %14.3g", r
	}
	printf "\n"
}
/^$/ { header = "" }
