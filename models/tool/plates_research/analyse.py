#!/usr/bin/env python3
"""Summaries of grid_results.tsv."""
rows = [l.rstrip('\n').split('\t') for l in open('grid_results.tsv')]
K = ['modes', 'thr', 'bt', 'unc', 'merge', 'arlo', 'arhi', 'minh', 'pmx', 'pmy']
def d(r):
    x = dict(zip(K, r[:10]))
    for i, g in enumerate(('eu', 'us')):
        for j, k in enumerate(('full', 'half', 'prec', 'bpi')):
            x[f'{g}_{k}'] = float(r[10 + 4 * i + j])
    return x
R = [d(r) for r in rows]
def show(x):
    print(f"{x['modes']:16s} thr {x['thr']} bt {x['bt']} unc {x['unc']} merge {x['merge'][0]} ar {x['arlo']}-{x['arhi']:>5.5} minh {x['minh']:>2} pm {x['pmx']}/{x['pmy']} | "
          f"EU full {x['eu_full']*100:5.1f} half {x['eu_half']*100:5.1f} prec {x['eu_prec']:.2f} | US full {x['us_full']*100:5.1f} half {x['us_half']*100:5.1f} prec {x['us_prec']:.2f}")
ok = [x for x in R if x['eu_full'] >= .94 and x['us_full'] >= .94]
print(len(ok), 'of', len(R), 'meet full>=94% in both')
print('--- top by min precision, meeting full target')
for x in sorted(ok, key=lambda x: -min(x['eu_prec'], x['us_prec']))[:15]: show(x)
print('--- top by min full, with prec>=0.5 both')
ok2 = [x for x in R if x['eu_prec'] >= .5 and x['us_prec'] >= .5]
for x in sorted(ok2, key=lambda x: -(min(x['eu_full'], x['us_full']) + 0.01 * min(x['eu_prec'], x['us_prec'])))[:10]: show(x)
print('--- best per mode (meeting target, by min prec)')
for m in dict.fromkeys(x['modes'] for x in R):
    c = [x for x in ok if x['modes'] == m]
    if c: show(max(c, key=lambda x: min(x['eu_prec'], x['us_prec'])))
    else:
        c = [x for x in R if x['modes'] == m and x['eu_prec'] >= .5 and x['us_prec'] >= .5]
        print(m, 'no recipe meets full target; best min-full with prec>=.5:'); show(max(c, key=lambda x: min(x['eu_full'], x['us_full'])))
