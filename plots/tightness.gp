# Where Theorem 1's bound is attained: `aal theorem --family parallel --li-min A --li-max B`
# on one-sample least squares (lsq1) and softmax regression (softmax1), eta = 1/L.
#   gnuplot -e "csv='tight.csv'; steps=100; out='tightness'" plots/tightness.gp
# x: the LI target (r = alpha h, LI = 2 alpha - alpha^2 at every step).  y (log):
# final/initial loss after `steps` steps, measured (filled) and the theorem's bound
# prod_k (f_k - (eta/2) LI ||grad f_k||^2)/f_k (open, column guaranteed_ratio); the
# line is (1 - LI)^steps, the bound on least squares, where it is attained exactly.
if (!exists("csv")) csv = 'tight.csv'
if (!exists("out")) out = 'tightness'
if (!exists("steps")) steps = 100
set datafile separator ','
set datafile missing 'nan'
set logscale y
set format y '10^{%L}'
set xlabel 'LI of r = {/Symbol a} h (the same at every step)'
set ylabel sprintf('loss after %d steps / initial loss', steps)
set key top right box font ',9'
set grid
set arrow 1 from 0, graph 0 to 0, graph 1 nohead dt 2 lc 'gray40'
do for [t = 1:2] {
  if (t == 1) { set terminal pngcairo size 900,600 font ',10' enhanced; set output out.'.png' } \
  else        { set terminal svg size 900,600 font 'Helvetica,10' enhanced; set output out.'.svg' }
  set title sprintf('Tightness of Theorem 1 (parallel r, {/Symbol h} = 1/L, %d steps): least squares attains the bound', steps)
  plot (1 - x)**steps with lines lw 2 lc 'black' title sprintf('(1 - LI)^{%d}', steps), \
       csv skip 1 using (strcol(1) eq 'lsq1' ? column(3) : NaN):7 with points pt 7 ps 1.0 lc 1 title 'lsq1, measured', \
       csv skip 1 using (strcol(1) eq 'softmax1' ? column(3) : NaN):7 with points pt 7 ps 0.7 lc 2 title 'softmax1, measured', \
       csv skip 1 using (strcol(1) eq 'softmax1' ? column(3) : NaN):27 with points pt 6 ps 1.0 lc 2 title "softmax1, theorem's bound"
  set output
}
