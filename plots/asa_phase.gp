# Phase diagram of ASA's lr_expansion against the input scale, from the grid CSV that
# experiments/theorem.sh aggregates out of `aal theorem --asa --out FILE`:
#   problem,decoding,sigma,k,runs,rose_fraction,li_mean
#   gnuplot -e "csv='asa-grid.csv'; eps=0.01; out='asa_phase'" plots/asa_phase.gp
# One panel per problem (lsq1: one sample; lsq: batch of 8) and decoding (pm1, 01,
# mixed).  Squares: the fraction of runs whose loss rose (eta = 1/L, 100 steps).
# Lines: the predicted boundaries (expectations over the inputs, theory/asa.c): LI = 0
# (below the line LI > 0) and c = 2 (above it the one-sample loss rises); dotted: the
# paper's default lr_expansion 100.
if (!exists("csv")) csv = 'asa-grid.csv'
if (!exists("out")) out = 'asa_phase'
if (!exists("eps")) eps = 0.01
a = sqrt(2 / pi)
li0_pm(s) = 2 + 2 * s * a / eps
li0_mixed(s) = 1 + s * a / eps
c2(s) = 2 * (s**2 + 2 * eps * s * a + eps**2) / (eps * (s * a + eps))
problems = "lsq1 lsq"
decodings = "pm1 01 mixed"
ptitle(p) = p == 1 ? 'one sample' : 'batch of 8'
dtitle(d) = d == 1 ? '{/Symbol \261}1 decoding' : (d == 2 ? '\{0,1\} post-ReLU decoding' : 'published mixed decoding')
set datafile separator ','
set logscale xy
set xrange [0.08:3.5]
set yrange [0.8:1300]
set cbrange [0:1]
set palette defined (0 '#2166ac', 0.5 '#f7f7f7', 1 '#b2182b')
set xlabel 'input scale {/Symbol s} (x ~ N(0, {/Symbol s}^2), before the ReLU for \{0,1\} and mixed)'
set ylabel 'lr\_expansion k'
set cblabel 'fraction of runs whose loss rose'
set key bottom right font ',8' box opaque
do for [t = 1:2] {
  if (t == 1) { set terminal pngcairo size 1500,900 font ',10' enhanced; set output out.'.png' } \
  else        { set terminal svg size 1500,900 font 'Helvetica,10' enhanced; set output out.'.svg' }
  set multiplot layout 2,3 title sprintf("ASA on least squares, {/Symbol e} = %g, {/Symbol h} = 1/L: where the loss rises", eps)
  do for [p = 1:2] {
    do for [d = 1:3] {
      set title ptitle(p).', '.dtitle(d)
      prob = word(problems, p)
      dec = word(decodings, d)
      plot csv skip 1 using (strcol(1) eq prob && strcol(2) eq dec ? $3 : NaN):4:6 \
             with points pt 5 ps 2.2 palette notitle, \
           (d == 3 ? li0_mixed(x) : li0_pm(x)) with lines lw 2 lc 'black' title 'LI = 0 (pred.)', \
           c2(x) with lines lw 2 dt 2 lc 'black' title 'c = 2 (pred.)', \
           100 with lines dt 3 lc 'gray30' title 'k = 100'
    }
  }
  unset multiplot
  set output
}
