/*
 * expstats_num.c - the distributions the experiment report needs: normal
 * CDF and quantile, Student t CDF and quantile, chi-squared upper tail,
 * and their building blocks, the regularized incomplete gamma and beta
 * functions. Linked into libweftexp (admin, weftctl, tests).
 *
 * Sources: the incomplete gamma by its series for x < a + 1 and Lentz's
 * continued fraction otherwise, the incomplete beta by its continued
 * fraction with the symmetry I_x(a,b) = 1 - I_{1-x}(b,a) for x beyond
 * (a+1)/(a+b+2) (Numerical Recipes 3rd ed. 6.2 and 6.4; Cephes igam.c and
 * incbet.c use the same split). The normal quantile is Acklam's rational
 * approximation refined by one Halley step on erfc (relative error below
 * 1e-15). The t quantile inverts the CDF by bracketing and bisection
 * finished with Newton steps. No state, no logging.
 */
#include <float.h>
#include <math.h>

#include "lib/expstats.h"

#define NUM_EPS 1e-15
#define NUM_TINY 1e-300
#define NUM_ITMAX 10000

double wf_exp_norm_cdf(double x)
{
	return 0.5 * erfc(-x / M_SQRT2);
}

double wf_exp_norm_sf(double x)
{
	return 0.5 * erfc(x / M_SQRT2);
}

/* Acklam's approximation, then one Halley step (P. J. Acklam, "An
 * algorithm for computing the inverse normal cumulative distribution
 * function", 2003). */
double wf_exp_norm_quantile(double p)
{
	static const double a[] = { -3.969683028665376e+01, 2.209460984245205e+02,
		-2.759285104469687e+02, 1.383577518672690e+02,
		-3.066479806614716e+01, 2.506628277459239e+00 };
	static const double b[] = { -5.447609879822406e+01, 1.615858368580409e+02,
		-1.556989798598866e+02, 6.680131188771972e+01,
		-1.328068155288572e+01 };
	static const double c[] = { -7.784894002430293e-03, -3.223964580411365e-01,
		-2.400758277161838e+00, -2.549732539343734e+00,
		4.374664141464968e+00, 2.938163982698783e+00 };
	static const double d[] = { 7.784695709041462e-03, 3.224671290700398e-01,
		2.445134137142996e+00, 3.754408661907416e+00 };
	double q, r, x, e, u;

	if (isnan(p) || p < 0 || p > 1)
		return NAN;
	if (p == 0)
		return -INFINITY;
	if (p == 1)
		return INFINITY;
	if (p < 0.02425) {
		q = sqrt(-2 * log(p));
		x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
		    ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
	} else if (p > 1 - 0.02425) {
		q = sqrt(-2 * log1p(-p));
		x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
		    ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
	} else {
		q = p - 0.5;
		r = q * q;
		x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
		    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
	}
	/* Halley: e = Phi(x) - p, computed on the side with no cancellation */
	if (p < 0.5)
		e = wf_exp_norm_cdf(x) - p;
	else
		e = (1 - p) - wf_exp_norm_sf(x);
	u = e * sqrt(2 * M_PI) * exp(x * x / 2);
	return x - u / (1 + x * u / 2);
}

/* log Gamma(a) for a > 0 without touching the global signgam. */
static double lgam(double a)
{
	int sign;

	return lgamma_r(a, &sign);
}

/* P(a, x) by its series; valid for x < a + 1. */
static double gamma_series(double a, double x)
{
	double ap = a, sum = 1.0 / a, del = sum;

	for (int i = 0; i < NUM_ITMAX; i++) {
		ap += 1;
		del *= x / ap;
		sum += del;
		if (fabs(del) < fabs(sum) * NUM_EPS)
			break;
	}
	return sum * exp(-x + a * log(x) - lgam(a));
}

/* Q(a, x) by Lentz's continued fraction; valid for x >= a + 1. */
static double gamma_cf(double a, double x)
{
	double b = x + 1 - a, c = 1 / NUM_TINY, d = 1 / b, h = d, an, del;

	for (int i = 1; i < NUM_ITMAX; i++) {
		an = -i * (i - a);
		b += 2;
		d = an * d + b;
		if (fabs(d) < NUM_TINY)
			d = NUM_TINY;
		c = b + an / c;
		if (fabs(c) < NUM_TINY)
			c = NUM_TINY;
		d = 1 / d;
		del = d * c;
		h *= del;
		if (fabs(del - 1) < NUM_EPS)
			break;
	}
	return exp(-x + a * log(x) - lgam(a)) * h;
}

/* P(a, x) where it is decided without a sum: NAN outside the domain, 0 at
 * x = 0, 1 at x = inf. 1 and *ret_p then, else 0. */
static int gamma_edge(double a, double x, double *ret_p)
{
	if (isnan(a) || isnan(x) || a <= 0 || x < 0)
		*ret_p = NAN;
	else if (x == 0 || isinf(x))
		*ret_p = x == 0 ? 0 : 1;
	else
		return 0;
	return 1;
}

/* Each from the series or the continued fraction, whichever converges
 * there (Numerical Recipes' split at x = a + 1), the other one as 1 - it. */
double wf_exp_gamma_p(double a, double x)
{
	double p;

	if (gamma_edge(a, x, &p))
		return p;
	return x < a + 1 ? gamma_series(a, x) : 1 - gamma_cf(a, x);
}

double wf_exp_gamma_q(double a, double x)
{
	double p;

	if (gamma_edge(a, x, &p))
		return 1 - p; /* NAN stays NAN */
	return x < a + 1 ? 1 - gamma_series(a, x) : gamma_cf(a, x);
}

double wf_exp_chi2_sf(double x, double k)
{
	if (isnan(x) || isnan(k) || k <= 0)
		return NAN;
	if (x <= 0)
		return 1;
	return wf_exp_gamma_q(k / 2, x / 2);
}

/* The continued fraction of I_x(a, b) (NR betacf), Lentz's method. */
static double beta_cf(double a, double b, double x)
{
	double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d, h, aa, del;

	d = 1 - qab * x / qap;
	if (fabs(d) < NUM_TINY)
		d = NUM_TINY;
	d = 1 / d;
	h = d;
	for (int m = 1; m < NUM_ITMAX; m++) {
		int m2 = 2 * m;

		aa = m * (b - m) * x / ((qam + m2) * (a + m2));
		d = 1 + aa * d;
		if (fabs(d) < NUM_TINY)
			d = NUM_TINY;
		c = 1 + aa / c;
		if (fabs(c) < NUM_TINY)
			c = NUM_TINY;
		d = 1 / d;
		h *= d * c;
		aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
		d = 1 + aa * d;
		if (fabs(d) < NUM_TINY)
			d = NUM_TINY;
		c = 1 + aa / c;
		if (fabs(c) < NUM_TINY)
			c = NUM_TINY;
		d = 1 / d;
		del = d * c;
		h *= del;
		if (fabs(del - 1) < NUM_EPS)
			break;
	}
	return h;
}

double wf_exp_beta_inc(double a, double b, double x)
{
	double lbt;

	if (isnan(a) || isnan(b) || isnan(x) || a <= 0 || b <= 0 || x < 0 || x > 1)
		return NAN;
	if (x == 0 || x == 1)
		return x;
	lbt = lgam(a + b) - lgam(a) - lgam(b) + a * log(x) + b * log1p(-x);
	if (x < (a + 1) / (a + b + 2))
		return exp(lbt) * beta_cf(a, b, x) / a;
	return 1 - exp(lbt) * beta_cf(b, a, 1 - x) / b;
}

/* P(T <= t) = 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2 for t > 0. For large
 * |t| the argument df/(df+t^2) keeps its precision; 1 - that would not. */
double wf_exp_t_cdf(double t, double df)
{
	double tail;

	if (isnan(t) || isnan(df) || df <= 0)
		return NAN;
	if (isinf(df) || df > 1e10)
		return wf_exp_norm_cdf(t);
	if (isinf(t))
		return t > 0 ? 1 : 0;
	tail = 0.5 * wf_exp_beta_inc(df / 2, 0.5, df / (df + t * t));
	return t > 0 ? 1 - tail : tail;
}

/* Bisection on the CDF inside a bracket grown from the normal quantile,
 * then Newton steps with the t density. */
double wf_exp_t_quantile(double p, double df)
{
	double lo, hi, x, f, dens, lc;

	if (isnan(p) || isnan(df) || df <= 0 || p < 0 || p > 1)
		return NAN;
	if (p == 0)
		return -INFINITY;
	if (p == 1)
		return INFINITY;
	if (isinf(df) || df > 1e10)
		return wf_exp_norm_quantile(p);
	if (p > 0.5)
		return -wf_exp_t_quantile(1 - p, df);
	if (p == 0.5)
		return 0;
	/* p < 0.5: the quantile is negative and at most the normal one */
	hi = 0;
	lo = wf_exp_norm_quantile(p) - 1;
	while (wf_exp_t_cdf(lo, df) > p && lo > -1e300)
		lo *= 2;
	for (int i = 0; i < 60; i++) {
		x = 0.5 * (lo + hi);
		if (wf_exp_t_cdf(x, df) > p)
			hi = x;
		else
			lo = x;
	}
	x = 0.5 * (lo + hi);
	lc = lgam((df + 1) / 2) - lgam(df / 2) - 0.5 * log(df * M_PI);
	for (int i = 0; i < 4; i++) {
		f = wf_exp_t_cdf(x, df) - p;
		dens = exp(lc - (df + 1) / 2 * log1p(x * x / df));
		if (!(dens > 0))
			break;
		x -= f / dens;
	}
	return x;
}

/* Lambda = sqrt(V / (V + tau2)) exp(est^2 tau2 / (2 V (V + tau2))), the
 * normal mixture likelihood ratio (Johari et al. 2017, eq. 11, with the
 * difference's variance V in place of 2 sigma^2 / n). */
double wf_exp_msprt_p(double est, double var, double tau2)
{
	double loglam;

	if (isnan(est) || !(var > 0) || !(tau2 > 0))
		return NAN;
	loglam = 0.5 * log(var / (var + tau2)) +
		 est * est * tau2 / (2 * var * (var + tau2));
	if (loglam <= 0)
		return 1;
	return exp(-loglam);
}
