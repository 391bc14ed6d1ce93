/*
 * confdump.c - the configuration in force, written back in its own
 * syntax: what `hitcountd -T` prints, and the values a reload log names.
 *
 * It loops over conf.c's table and writes each key's value from struct
 * conf by the key's kind, in the table's order and sections, so that the
 * output loads again as the same configuration (test_conf.c checks that)
 * and a new key needs nothing here.  Secrets are printed masked: -T
 * output ends up in bug reports.  It calls conf.c (the table) and log.c
 * (level and format names); main.c and conf.c call it.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "confdata.h"
#include "confdump.h"
#include "confkey.h"
#include "log.h"

/*
 * Print s as a libconfuse quoted string.  '$' is escaped too: libconfuse
 * would read "${NAME}" as the environment variable's value.
 */
static void
confdump_str(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\' || *s == '$')
			fputc('\\', fp);
		fputc(*s, fp);
	}
	fputc('"', fp);
}

/* Print the n strings of v as a list value. */
static void
confdump_strings(FILE *fp, char *const *v, size_t n)
{
	size_t i;

	fputc('{', fp);
	for (i = 0; i < n; i++) {
		if (i)
			fputs(", ", fp);
		confdump_str(fp, v[i]);
	}
	fputc('}', fp);
}

/* Print the addresses of one kind (admin or not) as a list value. */
static void
confdump_listen(FILE *fp, const struct conf *cf, int admin)
{
	size_t i;
	int first = 1;

	fputc('{', fp);
	for (i = 0; i < cf->cf_nlisten; i++) {
		if (cf->cf_listen[i].cfl_admin != admin)
			continue;
		if (!first)
			fputs(", ", fp);
		confdump_str(fp, cf->cf_listen[i].cfl_text);
		first = 0;
	}
	fputc('}', fp);
}

/* Print the value of key k in cf, in config-file syntax. */
static void
confdump_write_value(FILE *fp, const struct conf *cf, const struct conf_key *k)
{
	const char *s;
	int v = 0;

	if (k->k_kind != CONF_STR && k->k_kind != CONF_LISTEN &&
	    k->k_kind != CONF_HOSTPORTS)
		v = *CONF_AT(cf, k->k_off, const int);
	switch (k->k_kind) {
	case CONF_INT:
		fprintf(fp, "%d", v);
		break;
	case CONF_BOOL:
		fputs(v ? "true" : "false", fp);
		break;
	case CONF_LEVEL:
		confdump_str(fp, log_level_name(v));
		break;
	case CONF_FORMAT:
		confdump_str(fp, log_format_name(v));
		break;
	case CONF_STR:
		s = *CONF_AT(cf, k->k_off, char *const);
		/* Never echo a secret: -T output ends up in bug reports. */
		if ((k->k_flags & CONF_SECRET) && *s)
			s = "********";
		confdump_str(fp, s);
		break;
	case CONF_LISTEN:
		confdump_listen(fp, cf, (k->k_flags & CONF_ADMIN) != 0);
		break;
	case CONF_HOSTPORTS:
		confdump_strings(fp, *CONF_AT(cf, k->k_off, char **const),
		    *CONF_AT(cf, k->k_noff, const size_t));
		break;
	}
}

int
confdump_print(const struct conf *cf, FILE *fp)
{
	enum conf_section in = CONF_TOP;
	size_t i;

	fprintf(fp, "# effective configuration of %s\n", cf->cf_path);
	for (i = 0; i < confkey_count; i++) {
		const struct conf_key *k = &confkey_table[i];

		if (k->k_section != in) {
			if (in != CONF_TOP)
				fputs("}\n", fp);
			in = k->k_section;
			if (in != CONF_TOP)
				fprintf(fp, "%s {\n",
				    confkey_sections[in].name);
		}
		fprintf(fp, "%s%s = ", in != CONF_TOP ? "    " : "",
		    k->k_opt.name);
		confdump_write_value(fp, cf, k);
		fputc('\n', fp);
	}
	if (in != CONF_TOP)
		fputs("}\n", fp);
	return ferror(fp) ? -1 : 0;
}

/* Key k's value in cf as -T prints it, cut to fit buf. */
const char *
confdump_value(const struct conf *cf, const struct conf_key *k, char *buf,
    size_t len)
{
	FILE *fp;

	buf[0] = '\0';
	fp = fmemopen(buf, len - 1, "w");
	if (fp == NULL)
		return "?";
	confdump_write_value(fp, cf, k);
	fclose(fp);
	buf[len - 1] = '\0';
	return buf;
}
