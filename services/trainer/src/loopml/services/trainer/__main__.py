from loopml.services.trainer.server import main

main()
