from loopml.services.trainer.server import main

if __name__ == "__main__":
    main()
