# Phase diagram of Theorem 1 from the CSV of `aal theorem --out FILE.csv`.
#   gnuplot -e "csv='in.csv'; out='phase'" plots/phase.gp      -> phase.png, phase.svg
# One panel per testbed (lsq1, softmax1: one sample, where Theorem 1 applies; lsq,
# softmax: mini-batches, where it does not).  x: the run's MINIMUM LI over steps and
# samples (the theorem needs LI >= 0 at every step).  Left axis (log): final/initial
# loss, one point per run, coloured by family of r.  Right axis: the fraction of runs
# that descended (no step rose and at least one fell beyond rounding: r = 0, which leaves
# the loss unchanged, does not count), in bins of width `binw`.  Ratios below `floor`
# (e.g. exactly 0: one-sample least squares with r = h + o reaches the minimum in one
# step) are drawn at `floor`, since a log axis cannot show 0.
if (!exists("csv")) csv = 'theorem.csv'
if (!exists("out")) out = 'phase'
binw = 0.25
floor = 1e-40
families = "parallel parallel_hi ortho stale sign sign_x100 noise flip"
problems = "lsq1 softmax1 lsq softmax"
titles = "'one-sample least squares (L = ||h||^2): Theorem 1 applies' 'one-sample softmax regression (L = ||h||^2/2, a bound): Theorem 1 applies' 'mini-batch least squares (L = {/Symbol l}_{max}(H^TH)/B): per-sample LI is not the condition' 'mini-batch softmax regression (L = {/Symbol l}_{max}(H^TH)/(2B)): per-sample LI is not the condition'"

set datafile separator ','
set datafile missing 'nan'
bin(x) = binw * floor(x / binw) + binw / 2
clamp(v) = (v < floor) ? floor : v

set macros
plotcmd = "set logscale y; set format y '10^{%L}'; \
  set xrange [-3.25:1.25]; set y2range [-0.05:1.05]; \
  set ytics nomirror; set y2tics 0, 0.25, 1; \
  set xlabel 'minimum learning indicator of the run, LI = r^T(2h - r)/||h||^2'; \
  set ylabel 'final / initial loss'; set y2label 'fraction of runs that descended'; \
  set arrow 1 from 0, graph 0 to 0, graph 1 nohead dt 2 lc 'gray40'; \
  set key outside right top box font ',9'; set grid xtics"

do for [t = 1:2] {
  if (t == 1) { set terminal pngcairo size 1100,1700 font ',10' enhanced; set output out.'.png' } \
  else        { set terminal svg size 1100,1700 font 'Helvetica,10' enhanced; set output out.'.svg' }
  set multiplot layout 4,1 title "Theorem 1 phase diagram (runs from ".csv.")" noenhanced
  do for [p = 1:4] {
    prob = word(problems, p)
    @plotcmd
    # only the one-sample panels have ratios at the floor; lift them off the frame
    if (p <= 2) { set yrange [floor/100:*] } else { set yrange [*:*] }
    set title word(titles, p)
    plot for [f = 1:words(families)] csv skip 1 \
           using (strcol(1) eq prob && strcol(2) eq word(families, f) ? column(6) : NaN):(clamp(column(7))) \
           with points pt 7 ps 0.5 lc f title word(families, f) noenhanced, \
         csv skip 1 using (strcol(1) eq prob ? bin(column(6)) : NaN):(strcol(23) eq 'descended' ? 1 : 0) axes x1y2 \
           smooth unique with linespoints lw 2 pt 5 lc 'black' title 'descended (binned)'
  }
  unset multiplot
  set output
}
