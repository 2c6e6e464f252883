# The clone's Snakefile: reprogrid's packaged workflow (reprogrid/workflow/Snakefile), on
# config/config.yaml unless --configfile names another. A project of your own uses the
# same workflow as a module: `reprogrid init` writes that Snakefile.
from reprogrid.workflow import default_configfile

# A config file named on the command line (--configfile) replaces the default one
# instead of being deep-merged into it: otherwise the default's seed settings and
# library configurations would silently join the grid that file describes.
if not workflow.overwrite_configfiles:

    configfile: default_configfile()


include: "reprogrid/workflow/Snakefile"
