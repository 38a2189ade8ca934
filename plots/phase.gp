# Phase diagram of Theorem 1 from the CSV of `aal theorem --out FILE.csv`.
#   gnuplot -e "csv='in.csv'; out='phase'" plots/phase.gp      -> phase.png, phase.svg
# One panel per testbed (lsq1, lsq, softmax).  x: the run's measured mean LI.
# Left axis (log): final/initial loss, one point per run, coloured by family of r.
# Right axis: fraction of runs whose loss never rose (monotone), over all families,
# in LI bins of width `binw`.  Ratios below `floor` (e.g. exactly 0: one-sample least
# squares with r = h + o reaches the minimum in one step) are drawn at `floor`, since a
# log axis cannot show 0.
if (!exists("csv")) csv = 'theorem.csv'
if (!exists("out")) out = 'phase'
binw = 0.25
floor = 1e-40
families = "parallel parallel_hi ortho stale sign sign_x100 noise flip"
problems = "lsq1 lsq softmax"
titles = "'one-sample least squares (L = ||h||^2)' 'mini-batch least squares (L = {/Symbol l}_{max}(H^TH)/B)' 'softmax regression (L = {/Symbol l}_{max}(H^TH)/(2B), a bound)'"

set datafile separator ','
set datafile missing 'nan'
bin(x) = binw * floor(x / binw) + binw / 2
clamp(v) = (v < floor) ? floor : v

set macros
plotcmd = "set logscale y; set format y '10^{%L}'; \
  set xrange [-3.25:1.25]; set y2range [-0.05:1.05]; \
  set ytics nomirror; set y2tics 0, 0.25, 1; \
  set xlabel 'learning indicator LI = r^T(2h - r)/||h||^2 (mean over steps and samples)'; \
  set ylabel 'final / initial loss'; set y2label 'fraction of monotone runs'; \
  set arrow 1 from 0, graph 0 to 0, graph 1 nohead dt 2 lc 'gray40'; \
  set key outside right top box font ',9'; set grid xtics"


do for [t = 1:2] {
  if (t == 1) { set terminal pngcairo size 1100,1300 font ',10' enhanced; set output out.'.png' } \
  else        { set terminal svg size 1100,1300 font 'Helvetica,10' enhanced; set output out.'.svg' }
  set multiplot layout 3,1 title "Theorem 1 phase diagram: LI >= 0 guarantees descent with {/Symbol h} = 1/L (runs from ".csv.")"
  do for [p = 1:3] {
    prob = word(problems, p)
    @plotcmd
    # only the one-sample panel has ratios at the floor; lift them off the frame
    if (p == 1) { set yrange [floor/100:*] } else { set yrange [*:*] }
    set title word(titles, p)
    plot for [f = 1:words(families)] csv skip 1 \
           using (strcol(1) eq prob && strcol(2) eq word(families, f) ? column(5) : NaN):(clamp(column(7))) \
           with points pt 7 ps 0.5 lc f title word(families, f) noenhanced, \
         csv skip 1 using (strcol(1) eq prob ? bin(column(5)) : NaN):(column(8)) axes x1y2 \
           smooth unique with linespoints lw 2 pt 5 lc 'black' title 'monotone (binned)'
  }
  unset multiplot
  set output
}
