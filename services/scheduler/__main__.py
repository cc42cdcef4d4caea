from services.plumbing.runner import main
from services.scheduler.app import DEFINITION

main(DEFINITION)
